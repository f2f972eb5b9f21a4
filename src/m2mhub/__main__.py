from m2mhub.cli import main

main()
