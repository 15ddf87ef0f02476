from awsprac.commands.cli import main

main()
