// Renders conversations with the checkpoints' own Jinja chat templates, through Hugging
// Face's JavaScript Jinja (@huggingface/jinja, the engine transformers.js runs templates
// with), as MiniCPM-V's chat() prepares them: a turn's items joined with "\n", each
// picture the marker "(<image>./</image>)". tests/tokenizer/test_conversation_template.cpp
// checks the engine's native rendering and ids against the output.
//   npm install --prefix /tmp/jinja @huggingface/jinja@0.5.11
//   node tools/render_chat_templates.mjs /tmp/jinja/node_modules > tests/data/chat_templates/rendered.json
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const modules = process.argv[2];
const require = createRequire(path.join(modules, "x.js"));
const { Template } = require("@huggingface/jinja");

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.join(here, "..");
const config = (p) => JSON.parse(readFileSync(path.join(root, p), "utf8"));

const MARKER = "(<image>./</image>)";
const IMG = (i) => ({ image: i });
const T = (text) => ({ text });

// Each case: turns of parts ({text} | {image: k}), and the template variables.
const conversations = [
  { name: "one picture", turns: [{ role: "user", content: [IMG(0), T("What is in the picture?")] }] },
  { name: "system and two turns", turns: [
      { role: "system", content: [T("You answer in one word.")] },
      { role: "user", content: [IMG(0), T("What shape is this?")] },
      { role: "assistant", content: [T("square")] },
      { role: "user", content: [T("And its colour?")] } ] },
  { name: "pictures in two turns", turns: [
      { role: "user", content: [T("Compare"), IMG(0), T("with the next one.")] },
      { role: "assistant", content: [T("Send it.")] },
      { role: "user", content: [IMG(1), T("  Here it is.  ")] } ] },
  { name: "text only", turns: [{ role: "user", content: [T(" Hello there\n")] }] },
  { name: "past reasoning", turns: [
      { role: "user", content: [T("2+2?")] },
      { role: "assistant", content: [T("<think>\nadd them\n</think>\n\n4")] },
      { role: "user", content: [T("3+3?")] } ] },
];

const templates = [
  { name: "minicpmv26", dir: "tests/data/minicpmv26-tiny", cfg: config("tests/data/minicpmv26-tiny/tokenizer_config.json"), thinking: [null] },
  // The tiny 4.5's template (tools/make_minicpmv45_tiny.py) has Qwen3's shape and 4.5's
  // generation-prompt tail but keeps past reasoning verbatim; the engine follows the real
  // Qwen3 rule, held to Qwen3's own template below, so that case is left out here.
  { name: "minicpmv45", dir: "tests/data/minicpmv45-tiny", cfg: config("tests/data/minicpmv45-tiny/tokenizer_config.json"),
    thinking: [false, true], skip: ["past reasoning"] },
  // MiniCPM-o 2.6 carries Qwen2.5's template (its LLM's), with that template's default system
  // turn; the tiny checkpoint (tools/make_minicpmo26_tiny.py) holds it as released.
  { name: "minicpmo26", dir: "tests/data/minicpmo26-tiny", cfg: config("tests/data/minicpmo26-tiny/tokenizer_config.json"), thinking: [null] },
  { name: "qwen3", dir: "cache:qwen3", cfg: config(".cache/testdata/qwen3/tokenizer_config.json"), thinking: [false] },
  { name: "llama3", dir: "cache:llama3", cfg: config(".cache/testdata/llama3/tokenizer_config.json"), thinking: [null] },
];

const bosOf = (cfg) => (typeof cfg.bos_token === "object" && cfg.bos_token ? cfg.bos_token.content : cfg.bos_token) ?? "";

// The version that rendered, as installed (0.5.11 wrote the first entries; 0.5.13, the copy in
// .cache/testdata/node-llama-cpp, renders them alike).
const jinjaVersion = JSON.parse(readFileSync(path.join(modules, "@huggingface/jinja/package.json"), "utf8")).version;
const out = { generator: `tools/render_chat_templates.mjs (@huggingface/jinja ${jinjaVersion})`, marker: MARKER, templates: [] };
for (const t of templates) {
  const tmpl = new Template(t.cfg.chat_template);
  const entry = { name: t.name, dir: t.dir, chat_template: t.cfg.chat_template, bos_token: bosOf(t.cfg), cases: [] };
  for (const c of conversations) {
    if ((t.skip ?? []).includes(c.name)) continue;
    for (const thinking of t.thinking) {
      const messages = c.turns.map((m) => ({
        role: m.role,
        content: m.content.map((p) => ("image" in p ? MARKER : p.text)).join("\n"),
      }));
      const vars = { messages, add_generation_prompt: true, bos_token: entry.bos_token };
      if (thinking !== null) vars.enable_thinking = thinking;
      entry.cases.push({ name: c.name, turns: c.turns, enable_thinking: thinking, rendered: tmpl.render(vars) });
    }
  }
  out.templates.push(entry);
}
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
