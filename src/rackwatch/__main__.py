from rackwatch.cli import main

main()
