from dlzoo.compress.cli import main

main()
