"""`awsprac image ...`: build and push the API's image to the env's repository (the guide's Makefile)."""

from __future__ import annotations

from pathlib import Path

import click

from awsprac.engine.options import ENV_OPTION, Group, app_for, global_options


@click.group("image", cls=Group)
@global_options
def group() -> None:
    """Build and push the API's container image to the env's ECR repository (the guide's Makefile).

    \b
      awsprac image release --env stg --dockerfile-dir ./api [--record-tag]   login, build, push
      awsprac image uri --env stg                                             URI:tag recorded in SSM

    The tag is `git rev-parse --short HEAD` of the Dockerfile folder's repository.
    """


DOCKERFILE_DIR = click.option("--dockerfile-dir", "folder", type=click.Path(path_type=Path), default=Path("."), show_default=True,
                              metavar="DIR", help="Folder with the Dockerfile: the build context, in a git repository.")
ALLOW_DIRTY = click.option("--allow-dirty", is_flag=True, help="Use the commit hash as the tag even with uncommitted changes in DIR.")
PLATFORM = click.option("--platform", default="linux/amd64", show_default=True, help="Target platform of the image.")
RECORD_TAG = click.option("--record-tag", "record", is_flag=True, help="Store the tag in SSM parameter image-tag-{project}-{env}.")


@group.command("release")
@ENV_OPTION
@DOCKERFILE_DIR
@ALLOW_DIRTY
@PLATFORM
@RECORD_TAG
@global_options
def image_release(env: str, folder: Path, allow_dirty: bool, platform: str, record: bool) -> None:
    """Log in, build and push URI:<commit>; nothing to do when that tag is in the repository already."""
    from awsprac.steps.ecr import image

    image.release(app_for(env), folder, platform, allow_dirty, record)


@group.command("login")
@ENV_OPTION
@global_options
def image_login(env: str) -> None:
    """Log docker in to the env's registry (an ECR token, given on stdin; valid 12 hours)."""
    from awsprac.steps.ecr import image

    image.login_command(app_for(env))


@group.command("build")
@ENV_OPTION
@DOCKERFILE_DIR
@ALLOW_DIRTY
@PLATFORM
@global_options
def image_build(env: str, folder: Path, allow_dirty: bool, platform: str) -> None:
    """docker build --platform PLATFORM -t URI:<commit> DIR."""
    from awsprac.steps.ecr import image

    image.build_command(app_for(env), folder, platform, allow_dirty)


@group.command("push")
@ENV_OPTION
@DOCKERFILE_DIR
@ALLOW_DIRTY
@RECORD_TAG
@global_options
def image_push(env: str, folder: Path, allow_dirty: bool, record: bool) -> None:
    """docker push URI:<commit> (after `image login` and `image build`), unless the tag is there already."""
    from awsprac.steps.ecr import image

    image.push_command(app_for(env), folder, allow_dirty, record)


@group.command("uri")
@ENV_OPTION
@global_options
def image_uri(env: str) -> None:
    """Print URI:tag of the image recorded in SSM (for deploy scripts)."""
    from awsprac.steps.ecr import image

    image.uri_command(app_for(env))
