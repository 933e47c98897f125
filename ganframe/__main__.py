from ganframe.cli import main

main()
