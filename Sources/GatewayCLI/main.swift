import Gateway

// Before any task starts: run Swift concurrency on the event loops (see EventLoopExecutor).
EventLoopExecutor.install(arguments: CommandLine.arguments)
await GatewayCommand.runFromCommandLine()
