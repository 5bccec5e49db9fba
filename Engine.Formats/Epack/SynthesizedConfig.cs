using System.Text;
using System.Text.Json;

namespace Engine.Formats.Epack;

/// <summary>
/// A config.json for a model whose file has none (a llama2.c checkpoint): the fields <see cref="HfConfigReader"/>
/// reads, written so that it rebuilds the same <see cref="ModelConfig"/> (the RoPE layout, which config.json cannot
/// express, travels in the .epack metadata).
/// </summary>
public static class SynthesizedConfig
{
    public static string ConfigJson(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("model_type", config.Architecture);
            writer.WriteNumber("vocab_size", config.VocabSize);
            writer.WriteNumber("hidden_size", config.HiddenSize);
            writer.WriteNumber("intermediate_size", config.IntermediateSize);
            writer.WriteNumber("num_hidden_layers", config.LayerCount);
            writer.WriteNumber("num_attention_heads", config.HeadCount);
            writer.WriteNumber("num_key_value_heads", config.KvHeadCount);
            writer.WriteNumber("head_dim", config.HeadDim);
            writer.WriteNumber("max_position_embeddings", config.MaxPositions);
            writer.WriteNumber("rms_norm_eps", config.RmsNormEps);
            writer.WriteNumber("rope_theta", config.RopeTheta);
            writer.WriteBoolean("tie_word_embeddings", config.TieWordEmbeddings);
            if (config.BosTokenId is int bos) writer.WriteNumber("bos_token_id", bos);
            if (config.EosTokenIds.Count > 0)
            {
                writer.WriteStartArray("eos_token_id");
                foreach (int id in config.EosTokenIds) writer.WriteNumberValue(id);
                writer.WriteEndArray();
            }
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
