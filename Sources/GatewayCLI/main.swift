import Gateway

await GatewayCommand.runFromCommandLine()
