namespace Engine.Runtime.Tokenization;

/// <summary>
/// A token matched as a whole in the text before the model's own tokenization (Hugging Face "added tokens": chat
/// markers, control tokens, tokens added by fine-tuning). <see cref="Special"/> tokens are matched only when the
/// caller asks for it and are skipped when decoding; <see cref="StripLeft"/>/<see cref="StripRight"/> swallow the
/// whitespace next to a match (lstrip/rstrip).
/// </summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool StripLeft = false, bool StripRight = false);
