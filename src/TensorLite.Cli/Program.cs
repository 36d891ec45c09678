using TensorLite.Cli;

return TensorLiteCli.Run(args);
