// llama.cpp's side of the CPU benchmark (bench/run_cpu_bench.sh), through node-llama-cpp's
// prebuilt CPU build (scripts/fetch_bench_peers.sh puts it in .cache/testdata/node-llama-cpp).
//
//   node bench/cpu_peer/llama_cpp_bench.mjs --model FILE.gguf --threads N [--prompt 512] [--decode 64]
//
// Prints one JSON line, the shape bench_cpu_decode prints for omnid:
//   {"engine":"llama.cpp","weights":..,"threads":..,"load_s":..,"prefill_tok_s":..,
//    "decode_tok_s":..,"peak_rss_bytes":..,"version":..}
// and "weight_bytes", llama.cpp's size of the model's tensors (llama_model_size), and
// "first_tokens", the first 16 greedy picks, to compare with omnid's on the same weights.
//
// What is timed matches bench/bench_cpu_decode.cpp: "prefill" is the prompt evaluated in one
// batch up to the first generated token (the prompt's last row of logits only, then a greedy
// pick), "decode" the next `decode` tokens, each one forward of one token, its logits and a
// greedy pick (temperature 0). End-of-generation tokens do not stop it (random weights pick
// anything). The prompt's ids are the same as omnid's: (i * 7919 + 13) % 151643, no special token.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const peerDir = process.env.NODE_LLAMA_CPP_DIR ??
  path.join(here, "..", "..", ".cache", "testdata", "node-llama-cpp");
const require = createRequire(path.join(peerDir, "package.json"));

function parseArgs(argv) {
  const a = { model: null, threads: 1, prompt: 512, decode: 64, weights: null, context: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, ""), value = argv[i + 1];
    if (!(key in a) || value === undefined) throw new Error(`llama_cpp_bench: unknown or valueless option ${argv[i]}`);
    a[key] = key === "model" || key === "weights" ? value : Number(value);
  }
  if (!a.model) throw new Error("llama_cpp_bench: --model FILE.gguf is required");
  a.weights ??= path.basename(a.model).replace(/^model-|\.gguf$/g, "");
  return a;
}

const args = parseArgs(process.argv.slice(2));
const { getLlama, LlamaLogLevel } = await import(require.resolve("node-llama-cpp"));
const peerVersion = JSON.parse(readFileSync(path.join(peerDir, "node_modules", "node-llama-cpp", "package.json"), "utf8")).version;

const secs = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
const llama = await getLlama({
  gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false,
  logLevel: LlamaLogLevel.error, maxThreads: args.threads,
});
let t0 = process.hrtime.bigint();
const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0, useMmap: true });
const context = await model.createContext({
  contextSize: args.context || args.prompt + args.decode + 64, batchSize: args.prompt, sequences: 1,
  threads: args.threads,
});
const sequence = context.getSequence();
const loadS = secs(t0);

const prompt = Array.from({ length: args.prompt }, (_, i) => (i * 7919 + 13) % 151643);
const tokens = sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true });
t0 = process.hrtime.bigint();
const generated = [(await tokens.next()).value];
const prefillS = secs(t0);
t0 = process.hrtime.bigint();
for (let i = 0; i < args.decode; ++i) generated.push((await tokens.next()).value);
const decodeS = secs(t0);
await tokens.return();

console.log(JSON.stringify({
  engine: "llama.cpp", weights: args.weights, threads: context.currentThreads ?? args.threads,
  prompt: args.prompt, decode: args.decode, load_s: loadS,
  prefill_tok_s: args.prompt / prefillS, decode_tok_s: args.decode / decodeS,
  peak_rss_bytes: process.resourceUsage().maxRSS * 1024, weight_bytes: model.size,
  version: `node-llama-cpp ${peerVersion}, llama.cpp ${llama.llamaCppRelease.release} (${llama.buildType})`,
  flash_attention: context.flashAttention, first_tokens: generated.slice(0, 16),
}));
await context.dispose();
await model.dispose();
await llama.dispose();
