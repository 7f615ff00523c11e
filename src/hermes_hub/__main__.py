from hermes_hub.cli.main import main

main()
