from autolung_cli.app import main

main()
