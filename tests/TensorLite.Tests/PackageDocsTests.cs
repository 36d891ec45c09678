using System.Xml.Linq;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The library's XML documentation (what its NuGet package ships beside the dll) is generated, and documents
/// the types a user starts from.</summary>
public sealed class PackageDocsTests
{
    [Fact]
    public void TheLibrary_HasItsXmlDocumentation_ForTheEntryPoints()
    {
        string dll = typeof(Tensor).Assembly.Location;
        string xml = Path.ChangeExtension(dll, ".xml");
        Assert.True(File.Exists(xml), $"{xml} is missing: GenerateDocumentationFile must stay on for src/TensorLite.");
        var documented = XDocument.Load(xml).Descendants("member")
            .Where(m => !string.IsNullOrWhiteSpace(m.Element("summary")?.Value) || m.Element("inheritdoc") != null)
            .Select(m => (string)m.Attribute("name")!).ToHashSet();
        foreach (var type in new[] { typeof(Tensor), typeof(Training.Trainer), typeof(Training.TrainingOptions), typeof(Training.RunFolder),
                                     typeof(Models.LlamaModel), typeof(Models.HfModelFolder), typeof(Data.HfTokenizer), typeof(Optim.AdamW) })
            Assert.Contains($"T:{type.FullName}", documented);
        Assert.Contains("M:TensorLite.Training.Trainer.Create(TensorLite.Training.TrainingOptions,System.String,TensorLite.Distributed.ICommunicator)", documented);
    }
}
