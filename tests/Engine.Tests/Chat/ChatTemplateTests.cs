using Engine.Runtime.Chat;
using Xunit;

namespace Engine.Tests.Chat;

/// <summary>
/// Real models' templates against the prompts Hugging Face's apply_chat_template(..., add_generation_prompt=True,
/// tokenize=False) makes of them. The expected strings were rendered with jinja2 3.1 set up as transformers sets it up
/// (sandboxed environment, trim_blocks, lstrip_blocks, loopcontrols, its tojson, raise_exception and strftime_now).
/// </summary>
public sealed class ChatTemplateTests
{
    private static readonly ChatMessage System = new("system", "You are a helpful assistant.");
    private static readonly ChatMessage Hello = new("user", "Hello!");
    private static readonly ChatMessage Reply = new("assistant", "Hi! How can I help you today?");
    private static readonly ChatMessage Question = new("user", "What is the capital of France?");

    private static string Render(string template, string? bos, string? eos, params ChatMessage[] messages) =>
        ChatTemplate.Render(template, messages, addGenerationPrompt: true, bos, eos);

    [Fact]
    public void Qwen25_SystemAndUser()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
            Render(RealTemplates.Qwen25, null, "<|im_end|>", System, Hello));
    }

    [Fact]
    public void Qwen25_SecondTurn()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help you today?<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
            Render(RealTemplates.Qwen25, null, "<|im_end|>", System, Hello, Reply, Question));
    }

    [Fact]
    public void Qwen25_WithoutSystemMessage_UsesItsDefault()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
            Render(RealTemplates.Qwen25, null, "<|im_end|>", Hello));
    }

    [Fact]
    public void Qwen25_WithoutGenerationPrompt_EndsAfterTheLastTurn()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n",
            ChatTemplate.Render(RealTemplates.Qwen25, [System, Hello], addGenerationPrompt: false, null, "<|im_end|>"));
    }

    [Fact]
    public void Qwen3_SystemAndUser()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
            Render(RealTemplates.Qwen3, null, "<|im_end|>", System, Hello));
    }

    [Fact]
    public void Qwen3_SecondTurn()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help you today?<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
            Render(RealTemplates.Qwen3, null, "<|im_end|>", System, Hello, Reply, Question));
    }

    [Fact]
    public void Qwen3_DropsTheReasoningOfEarlierAssistantTurns()
    {
        var thoughtfulReply = new ChatMessage("assistant", "<think>\nThe user greets me.\n</think>\n\nHi! How can I help you today?");
        Assert.Equal(
            "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help you today?<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
            Render(RealTemplates.Qwen3, null, "<|im_end|>", Hello, thoughtfulReply, Question));
    }

    [Fact]
    public void Llama3_SecondTurn()
    {
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help you today?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            Render(RealTemplates.Llama3, "<|begin_of_text|>", "<|end_of_text|>", System, Hello, Reply, Question));
    }

    [Fact]
    public void Llama31_SystemAndUser_WithDefaultDateLines()
    {
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            Render(RealTemplates.Llama31, "<|begin_of_text|>", "<|eot_id|>", System, Hello));
    }

    [Fact]
    public void Llama31_SecondTurn()
    {
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help you today?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            Render(RealTemplates.Llama31, "<|begin_of_text|>", "<|eot_id|>", System, Hello, Reply, Question));
    }

    [Fact]
    public void Llama31_WithoutSystemMessage_KeepsTheSystemHeaderAndDates()
    {
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            Render(RealTemplates.Llama31, "<|begin_of_text|>", "<|eot_id|>", Hello));
    }

    [Fact]
    public void Llama2_SystemAndUser()
    {
        Assert.Equal(
            "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST]",
            Render(RealTemplates.Llama2, "<s>", "</s>", System, Hello));
    }

    [Fact]
    public void Llama2_SecondTurn()
    {
        Assert.Equal(
            "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi! How can I help you today? </s><s>[INST] What is the capital of France? [/INST]",
            Render(RealTemplates.Llama2, "<s>", "</s>", System, Hello, Reply, Question));
    }

    [Fact]
    public void Llama2_RolesThatDoNotAlternate_RaiseTheTemplatesMessage()
    {
        var error = Assert.Throws<ChatTemplateException>(() => Render(RealTemplates.Llama2, "<s>", "</s>", System, Hello, Question));
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", error.Message);
        Assert.True(error.RaisedByTemplate);
    }

    [Fact]
    public void Mistral01_SecondTurn()
    {
        Assert.Equal(
            "<s>[INST] Hello! [/INST]Hi! How can I help you today?</s> [INST] What is the capital of France? [/INST]",
            Render(RealTemplates.Mistral01, "<s>", "</s>", Hello, Reply, Question));
    }

    [Fact]
    public void Mistral01_SystemMessage_IsRefusedByTheTemplate()
    {
        var error = Assert.Throws<ChatTemplateException>(() => Render(RealTemplates.Mistral01, "<s>", "</s>", System, Hello));
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", error.Message);
        Assert.True(error.RaisedByTemplate);
    }

    [Fact]
    public void Mistral02_SystemAndUser()
    {
        Assert.Equal(
            "<s> [INST] You are a helpful assistant.\n\nHello! [/INST]",
            Render(RealTemplates.Mistral02, "<s>", "</s>", System, Hello));
    }

    [Fact]
    public void Mistral02_SecondTurn()
    {
        Assert.Equal(
            "<s> [INST] You are a helpful assistant.\n\nHello! [/INST] Hi! How can I help you today?</s> [INST] What is the capital of France? [/INST]",
            Render(RealTemplates.Mistral02, "<s>", "</s>", System, Hello, Reply, Question));
    }

    [Fact]
    public void SmolLM2_SecondTurn()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help you today?<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
            Render(RealTemplates.SmolLM2, "<|im_start|>", "<|im_end|>", System, Hello, Reply, Question));
    }

    [Fact]
    public void SmolLM2_WithoutSystemMessage_UsesItsDefault()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
            Render(RealTemplates.SmolLM2, "<|im_start|>", "<|im_end|>", Hello));
    }

    [Fact]
    public void Render_NullSpecialTokens_RenderAsEmpty()
    {
        Assert.Equal("[][]", ChatTemplate.Render("[{{ bos_token }}][{{ eos_token }}]", [], addGenerationPrompt: false, null, null));
    }

    [Fact]
    public void Render_CarriageReturnLineEnds_AreReadAsNewlines()
    {
        Assert.Equal("a\nb", ChatTemplate.Render("{% if true %}\r\na\r\n{% endif %}\r\nb\r\n", [], addGenerationPrompt: false, null, null));
    }

    [Fact]
    public void RenderPlain_WritesCapitalisedRoleLines_ThenTheAssistantCue()
    {
        Assert.Equal(
            "System: You are a helpful assistant.\nUser: Hello!\nAssistant: Hi! How can I help you today?\nUser: What is the capital of France?\nAssistant:",
            ChatTemplate.RenderPlain([System, Hello, Reply, Question], addGenerationPrompt: true));
    }

    [Fact]
    public void RenderPlain_WithoutGenerationPrompt_EndsAfterTheLastLine()
    {
        Assert.Equal("User: Hello!\n", ChatTemplate.RenderPlain([Hello], addGenerationPrompt: false));
        Assert.Equal("Tool: 42\n", ChatTemplate.RenderPlain([new ChatMessage("tool", "42")], addGenerationPrompt: false));
        Assert.Equal("", ChatTemplate.RenderPlain([], addGenerationPrompt: false));
    }
}
