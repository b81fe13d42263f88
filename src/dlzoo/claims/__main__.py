from dlzoo.claims.cli import main

main()
