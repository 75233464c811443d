from kernelpad.cli import main

main()
