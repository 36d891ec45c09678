Console.WriteLine("perf placeholder");
