from cluelypro.cli.main import main

main()
