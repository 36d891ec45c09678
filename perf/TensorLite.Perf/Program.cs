using TensorLite.Perf;

string mode = args.Length > 0 ? args[0] : "";
switch (mode)
{
    case "peak":
        Peak.Run();
        break;
    case "kernel":
        KernelProbe.Run(args);
        break;
    case "compare":
        Compare.Run(args);
        break;
    case "quick":
        Quick.Run(args);
        break;
    default:
        Console.WriteLine("usage: quick");
        break;
}
