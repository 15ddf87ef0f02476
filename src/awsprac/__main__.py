from awsprac.cli import main

main()
