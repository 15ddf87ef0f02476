"""Edit ~/.aws/credentials, ~/.aws/config and .envrc in place: everything else kept byte-for-byte.

ConfigUpdater (not configparser) keeps other profiles, comments, blank lines and order as they
are. Writes are staged first (temporary files beside the targets, backups), and only then swapped
in with os.replace: a failure while staging leaves every file as it was.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from awsprac.engine.errors import AwspracError, UsageError

FILE_MODE = 0o600
DIR_MODE = 0o700
BOM = "\ufeff"


@dataclass(frozen=True)
class AwsFiles:
    """Where the shared files are: AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE when set, as the SDKs read them."""

    credentials: Path
    config: Path

    @classmethod
    def locate(cls) -> "AwsFiles":
        credentials = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
        config = os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
        return cls(Path(credentials).expanduser(), Path(config).expanduser())


def config_section(profile: str) -> str:
    """~/.aws/config names profiles `[profile x]`, except the default one; credentials uses `[x]`."""
    return profile if profile == "default" else f"profile {profile}"


@dataclass
class Document:
    """One INI file, parsed for in-place editing; rendered back with its own line endings."""

    path: Path
    existed: bool
    before: str
    updater: object = field(repr=False)
    crlf: bool = False
    bom: bool = False

    @classmethod
    def load(cls, path: Path) -> "Document":
        from configupdater import ConfigUpdater

        text, existed = read_text(path)
        bom = text.startswith(BOM)
        body = text[1:] if bom else text
        updater = ConfigUpdater()  # strict, as botocore's own reader: a duplicate section is an error
        try:
            updater.read_string(body, source=str(path))
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"{path}: cannot parse it ({first}); fix it by hand: awsprac edits only files the AWS CLI can read") from None
        return cls(path, existed, text, updater, "\r\n" in body, bom)

    def section(self, name: str):
        return self.updater[name] if self.updater.has_section(name) else None

    def get(self, section: str, key: str) -> str | None:
        sec = self.section(section)
        if sec is None or key not in sec:
            return None
        value = sec[key].value
        return value.strip() if isinstance(value, str) else value

    def set(self, section: str, values: dict[str, str]) -> None:
        """Set keys of a section (created at the end if missing), changing only the lines that differ."""
        sec = self.section(section)
        if sec is None:
            rendered = str(self.updater)
            self.updater.add_section(section)
            sec = self.updater[section]
            if rendered.strip() and not rendered.endswith("\n\n"):
                sec.add_before.space()
        for key, value in values.items():
            if key in sec:
                if self.get(section, key) != value:
                    sec[key].value = value
                continue
            options = sec.option_blocks()
            if options:
                options[-1].add_after.option(key, value)
            else:
                sec.set(key, value)

    def remove(self, section: str, key: str) -> None:
        sec = self.section(section)
        if sec is not None and key in sec:
            del sec[key]

    def render(self) -> str:
        text = str(self.updater)
        if text == (self.before[1:] if self.bom else self.before):
            return self.before
        if self.crlf:
            text = re.sub(r"(?<!\r)\n", "\r\n", text)  # new lines in the file's own style
        return (BOM if self.bom else "") + text

    def edit(self) -> "Edit":
        return Edit(self.path, self.before if self.existed else None, self.render())


@dataclass(frozen=True)
class Edit:
    path: Path
    before: str | None  # None: the file does not exist yet
    after: str
    mode: int = FILE_MODE
    backup: bool = True

    @property
    def changed(self) -> bool:
        return self.before != self.after


def read_text(path: Path) -> tuple[str, bool]:
    """The file's text with its line endings as they are, and whether it exists."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read(), True
    except FileNotFoundError:
        return "", False
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text; fix it by hand") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}") from None


def envrc_edit(path: Path, profile: str) -> tuple[Edit, list[str]]:
    """`.envrc` exporting AWS_PROFILE (never keys): the export line replaced or appended, the rest kept.

    Returns the edit and warnings about lines that would defeat it.
    """
    import shlex

    text, existed = read_text(path)
    line = f"export AWS_PROFILE={shlex.quote(profile)}"
    export = re.compile(r"^[ \t]*export[ \t]+AWS_PROFILE=.*?(\r?\n)?$")
    lines = text.splitlines(keepends=True)
    replaced = False
    for i, current in enumerate(lines):
        match = export.match(current)
        if match:
            lines[i] = line + (match.group(1) or "")
            replaced = True
            break
    if not replaced:
        newline = "\r\n" if "\r\n" in text else "\n"
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += newline
        lines.append(line + newline)
    warnings = []
    if re.search(r"^[ \t]*(export[ \t]+)?AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)=", text, re.M):
        warnings.append(f"{path} also sets AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, which beat AWS_PROFILE: remove those lines (keys belong in ~/.aws/credentials)")
    mode = (path.stat().st_mode & 0o777) if existed else 0o644
    return Edit(path, text if existed else None, "".join(lines), mode=mode, backup=False), warnings


@dataclass
class Written:
    path: Path
    backup: Path | None


def probe(paths: list[Path]) -> None:
    """Fail (exit 2, nothing left behind) unless a file can be written beside each path."""
    created: list[Path] = []
    try:
        for path in paths:
            folder = _real(path).parent
            created += _make_dirs(folder, path)
            fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
            os.close(fd)
            os.unlink(temp)
    except OSError as exc:
        _remove_dirs(created)
        raise UsageError(f"cannot write {exc.filename or path}: {exc.strerror}; nothing was written") from None


def write_all(edits: list[Edit]) -> list[Written]:
    """Stage every changed file (temporary file + backup), then swap them all in. Nothing is written on a staging failure."""
    edits = [e for e in edits if e.changed]
    staged: list[tuple[Edit, Path, str, Path | None]] = []
    created: list[Path] = []
    current = None
    try:
        for edit in edits:
            current = edit.path
            target = _real(edit.path)
            created += _make_dirs(target.parent, edit.path)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            staged.append((edit, target, temp, None))
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(edit.after)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(temp, edit.mode)
            if edit.backup and edit.before is not None:
                backup = _backup_path(target)
                with open(os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "w", encoding="utf-8", newline="") as f:
                    f.write(edit.before)
                staged[-1] = (edit, target, temp, backup)
    except OSError as exc:
        for _, _, temp, backup in staged:
            for leftover in (temp, backup):
                if leftover:
                    try:
                        os.unlink(leftover)
                    except OSError:
                        pass
        _remove_dirs(created)
        raise UsageError(f"cannot write {exc.filename or current}: {exc.strerror}; nothing was written") from None
    written = []
    for edit, target, temp, backup in staged:
        try:
            os.replace(temp, target)
        except OSError as exc:  # after staging succeeded: only a vanished folder or a full disk gets here
            raise AwspracError(f"replacing {target} failed: {exc.strerror}; the files written so far: {', '.join(str(w.path) for w in written) or 'none'}") from None
        written.append(Written(edit.path, backup))
    return written


def _real(path: Path) -> Path:
    """A symlinked file (dotfiles) is edited where it points, not replaced by a regular file."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _make_dirs(folder: Path, target: Path) -> list[Path]:
    """Create missing folders (0700: they hold keys). Returns those created, outermost first."""
    missing = []
    probe_dir = folder
    while not probe_dir.exists():
        missing.append(probe_dir)
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    created = []
    for d in reversed(missing):
        os.mkdir(d, DIR_MODE)
        os.chmod(d, DIR_MODE)  # whatever the umask
        created.append(d)
    if folder == Path.home() / ".aws" and folder.is_dir() and (folder.stat().st_mode & 0o777) != DIR_MODE:
        os.chmod(folder, DIR_MODE)
    return created


def _remove_dirs(created: list[Path]) -> None:
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:
            pass


def _backup_path(target: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = target.with_name(f"{target.name}.{stamp}.bak")
    n = 1
    while candidate.exists():
        candidate = target.with_name(f"{target.name}.{stamp}-{n}.bak")
        n += 1
    return candidate
