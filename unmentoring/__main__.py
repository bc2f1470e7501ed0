from unmentoring.cli import main

main()
