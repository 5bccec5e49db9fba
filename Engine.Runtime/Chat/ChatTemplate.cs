namespace Engine.Runtime.Chat;

/// <summary>One turn of a conversation: who spoke ("system", "user", "assistant", ...) and what they said.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// Turns a conversation into the prompt text a model was trained on, with the Jinja <c>chat_template</c> from the
/// model's tokenizer_config.json, the way Hugging Face's <c>apply_chat_template</c> renders it. The engine is a Jinja
/// subset (lexer, parser, evaluator in this folder) covering what chat templates use; it has no include, import,
/// extends, blocks, call blocks, filter blocks, recursive loops, <c>*args</c>/<c>**kwargs</c> or string <c>%</c>
/// formatting, and the rarer built-in filters fail by name when reached ("filter 'groupby' is not supported").
/// </summary>
public static class ChatTemplate
{
    /// <summary>
    /// Renders <paramref name="messages"/> with <paramref name="template"/>. The template sees <c>messages</c> (a list of
    /// <c>{role, content}</c> dicts), <c>add_generation_prompt</c>, <c>bos_token</c> and <c>eos_token</c> ("" when null),
    /// the functions <c>raise_exception(msg)</c> and <c>strftime_now(format)</c>, and Jinja's <c>namespace</c>, <c>range</c>
    /// and <c>dict</c>; <c>tools</c> and <c>documents</c> are left undefined. The environment is Hugging Face's: trim_blocks
    /// and lstrip_blocks on, a single trailing newline of the template dropped, no autoescaping.
    /// </summary>
    /// <exception cref="ChatTemplateException">The template is malformed, fails while rendering, exceeds the size or
    /// iteration limits, or calls <c>raise_exception</c> (then the message is exactly the template's).</exception>
    public static string Render(string template, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, string? bosToken, string? eosToken)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(messages);
        var messageValues = new List<object?>(messages.Count);
        foreach (var message in messages)
            messageValues.Add(new OrderedDictionary<string, object?> { ["role"] = message.Role, ["content"] = message.Content });
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = messageValues,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = bosToken ?? "",
            ["eos_token"] = eosToken ?? "",
        };
        try
        {
            return TemplateEvaluator.Render(TemplateParser.Parse(template), variables);
        }
        catch (InsufficientExecutionStackException)
        {
            // The parser and evaluator recurse over the template's structure and check the stack as they go.
            throw new ChatTemplateException("chat template: nested too deeply to render");
        }
    }

    /// <summary>
    /// The prompt for a model that has no chat template, typically a base model trained only on plain text. Each message
    /// becomes a line <c>"{Role}: {content}\n"</c> with the role's first letter capitalised ("User: Hi\n"), and with
    /// <paramref name="addGenerationPrompt"/> the prompt ends in <c>"Assistant:"</c>. That is the dialogue layout such models
    /// have seen in transcripts and screenplays, so the likeliest continuation is the assistant's reply (starting with a
    /// space, as the text it imitates does) followed by the next speaker's label, where a caller can stop.
    /// </summary>
    public static string RenderPlain(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = new System.Text.StringBuilder();
        foreach (var message in messages)
        {
            if (message.Role.Length > 0) prompt.Append(char.ToUpperInvariant(message.Role[0])).Append(message.Role, 1, message.Role.Length - 1);
            prompt.Append(": ").Append(message.Content).Append('\n');
        }
        if (addGenerationPrompt) prompt.Append("Assistant:");
        return prompt.ToString();
    }
}

/// <summary>A chat template could not be parsed or rendered, or rejected the conversation through <c>raise_exception</c>.</summary>
public sealed class ChatTemplateException : Exception
{
    public ChatTemplateException(string message) : base(message) { }

    public ChatTemplateException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>
    /// True when the template itself called <c>raise_exception</c>: the conversation is what it refuses (roles that do not
    /// alternate, a system message it does not support), not the template that is broken.
    /// </summary>
    public bool RaisedByTemplate { get; init; }

    /// <summary>An error in the template, located: "chat template: unknown filter 'foo' at line 3".</summary>
    internal static ChatTemplateException At(int line, string detail) => new($"chat template: {detail} at line {line}");
}
