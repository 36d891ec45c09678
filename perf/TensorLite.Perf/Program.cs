using TensorLite.Perf;

string mode = args.Length > 0 ? args[0] : "";
switch (mode)
{
    case "quick":
        Quick.Run(args);
        break;
    default:
        Console.WriteLine("usage: quick");
        break;
}
