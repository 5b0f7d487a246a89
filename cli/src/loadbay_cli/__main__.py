from loadbay_cli.main import main

main()
