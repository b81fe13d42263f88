from dlzoo.report.cli import main

main()
