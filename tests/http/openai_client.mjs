// The official OpenAI JavaScript client against omnid's HTTP front (docs/http.md).
//   OMNI_OPENAI_DIR=.cache/testdata/openai OMNI_BASE_URL=http://127.0.0.1:PORT/v1 \
//     node tests/http/openai_client.mjs PICTURE QUESTION FOLLOW_UP
// Asks about PICTURE (sent as a data: URL) at temperature 0, once plainly and once
// streamed, then a second turn (FOLLOW_UP after the first answer); prints
// {"model", "plain", "streamed", "chunks", "usage", "two_turn"} as JSON on stdout.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [picture, question, followUp] = process.argv.slice(2);
const dir = process.env.OMNI_OPENAI_DIR;
if (!dir || !picture || !question || !followUp) {
  console.error('usage: OMNI_OPENAI_DIR=... OMNI_BASE_URL=... node openai_client.mjs PICTURE QUESTION FOLLOW_UP');
  process.exit(2);
}
const mod = await import(pathToFileURL(path.join(dir, 'node_modules', 'openai', 'index.mjs')).href);
const OpenAI = mod.default ?? mod.OpenAI;
const client = new OpenAI({
  baseURL: process.env.OMNI_BASE_URL,
  apiKey: process.env.OMNI_API_KEY ?? 'none',
  maxRetries: 0,
  timeout: 60_000,
});

const ext = path.extname(picture).slice(1).toLowerCase();
const media = ext === 'jpg' ? 'jpeg' : ext;
const url = `data:image/${media};base64,${readFileSync(picture).toString('base64')}`;
const firstTurn = {
  role: 'user',
  content: [
    { type: 'image_url', image_url: { url } },
    { type: 'text', text: question },
  ],
};

const models = await client.models.list();
const model = models.data[0].id;

const plain = await client.chat.completions.create({
  model, messages: [firstTurn], temperature: 0, max_tokens: 16,
});

const stream = await client.chat.completions.create({
  model, messages: [firstTurn], temperature: 0, max_tokens: 16, stream: true,
  stream_options: { include_usage: true },
});
let streamed = '';
let chunks = 0;
let finish = null;
let usage = null;
let role = null;
for await (const chunk of stream) {
  ++chunks;
  if (chunk.usage) usage = chunk.usage;
  const choice = chunk.choices[0];
  if (!choice) continue;
  if (choice.delta.role) role = choice.delta.role;
  streamed += choice.delta.content ?? '';
  if (choice.finish_reason) finish = choice.finish_reason;
}

const answer = plain.choices[0].message.content;
const twoTurn = await client.chat.completions.create({
  model, temperature: 0, max_tokens: 16,
  messages: [firstTurn, { role: 'assistant', content: answer }, { role: 'user', content: followUp }],
});

console.log(JSON.stringify({
  model,
  plain: answer,
  plain_finish: plain.choices[0].finish_reason,
  plain_usage: plain.usage,
  object: plain.object,
  streamed,
  stream_role: role,
  stream_finish: finish,
  chunks,
  usage,
  two_turn: twoTurn.choices[0].message.content,
}));
