// stcheck.mjs: checks safetensors files written by whet with code that shares
// nothing with whet's Go reader. Run by TestIndependentCheck (node_test.go).
//
//   node stcheck.mjs --expect EXPECT.json [--hub DIR] TARGET
//
// TARGET is a checkpoint directory (model.safetensors, or shards plus
// model.safetensors.index.json). EXPECT.json holds what the Go test wrote:
// {"tensors": {name: {"dtype", "shape", "sha256"}}, "metadata": {...}}.
//
// 1. The independent spec check, always: a from-scratch reader of the format
//    (8-byte LE length, UTF-8 JSON header, data) applying the rules the
//    reference Rust library applies on load (header <= 100,000,000 bytes,
//    valid UTF-8 and JSON, no duplicate keys, known dtypes, element count *
//    bits a whole number of bytes equal to end - begin, tensors sorted by
//    offset contiguous from 0 to the end of the file, __metadata__ strings
//    only), plus what whet's writer promises (header padded with spaces to a
//    multiple of 8, compact JSON with __metadata__ first and tensors in the
//    reference writer's order, every tensor aligned to its element size,
//    "format": "pt", the index formatted as transformers formats it), and
//    the expected names, dtypes, shapes, data (SHA-256) and metadata.
// 2. With --hub DIR (a directory where `npm install @huggingface/hub` was
//    run): Hugging Face's own JS parser, parseSafetensorsMetadata, run on the
//    same files through a fetch that serves TARGET as if it were a Hub repo,
//    and its result compared with the expectations.
//
// Prints one JSON line of results and exits 0, or prints FAIL: ... and
// exits 1.

import { createHash } from "node:crypto";
import { readFileSync, existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const fail = (msg) => {
	console.log("FAIL: " + msg);
	process.exit(1);
};
const check = (cond, msg) => {
	if (!cond) fail(msg);
};

// Element widths in bits, from the format's dtype list, in the reference
// library's enum order (the order its writer sorts by, descending).
const DTYPES = [
	["BOOL", 8], ["F4", 4], ["F6_E2M3", 6], ["F6_E3M2", 6], ["U8", 8], ["I8", 8],
	["F8_E5M2", 8], ["F8_E4M3", 8], ["F8_E8M0", 8], ["F8_E4M3FNUZ", 8], ["F8_E5M2FNUZ", 8],
	["I16", 16], ["U16", 16], ["F16", 16], ["BF16", 16], ["I32", 32], ["U32", 32], ["F32", 32],
	["C64", 64], ["F64", 64], ["I64", 64], ["U64", 64],
];
const BITS = new Map(DTYPES);
const RANK = new Map(DTYPES.map(([d], i) => [d, i]));

// A strict JSON parser that keeps key order and refuses duplicate keys
// (JSON.parse silently keeps the last). Objects come back as arrays of
// [key, value] pairs tagged with obj: true.
function parseJSON(text, what) {
	let i = 0;
	const ws = () => {
		while (i < text.length && " \t\n\r".includes(text[i])) i++;
	};
	const err = (m) => fail(`${what}: JSON: ${m} at ${i}`);
	const value = () => {
		ws();
		const c = text[i];
		if (c === "{") {
			i++;
			const pairs = [];
			pairs.obj = true;
			const seen = new Set();
			ws();
			if (text[i] === "}") {
				i++;
				return pairs;
			}
			for (;;) {
				ws();
				if (text[i] !== '"') err("expected a key");
				const k = str();
				if (seen.has(k)) err(`duplicate key ${JSON.stringify(k)}`);
				seen.add(k);
				ws();
				if (text[i++] !== ":") err("expected :");
				pairs.push([k, value()]);
				ws();
				if (text[i] === ",") {
					i++;
					continue;
				}
				if (text[i++] === "}") return pairs;
				err("expected , or }");
			}
		}
		if (c === "[") {
			i++;
			const out = [];
			ws();
			if (text[i] === "]") {
				i++;
				return out;
			}
			for (;;) {
				out.push(value());
				ws();
				if (text[i] === ",") {
					i++;
					continue;
				}
				if (text[i++] === "]") return out;
				err("expected , or ]");
			}
		}
		if (c === '"') return str();
		const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
		if (m && m[0].length > 0) {
			i += m[0].length;
			return { num: m[0] };
		}
		for (const [lit, v] of [["true", true], ["false", false], ["null", null]]) {
			if (text.startsWith(lit, i)) {
				i += lit.length;
				return v;
			}
		}
		err("unexpected character");
	};
	const str = () => {
		const m = /^"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/.exec(text.slice(i));
		if (!m) err("bad string");
		i += m[0].length;
		return JSON.parse(m[0]);
	};
	const v = value();
	ws();
	if (i !== text.length) err("trailing data");
	return v;
}

// A non-negative integer from the parser's number form, as a BigInt.
function uint(v, what) {
	check(v && typeof v.num === "string" && /^(0|[1-9][0-9]*)$/.test(v.num), `${what}: not a non-negative integer`);
	return BigInt(v.num);
}

const bytesCompare = (a, b) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

// checkFile reads one safetensors file per the spec and returns its tensors
// (name -> {dtype, shape, begin, end, sha256}) and metadata.
function checkFile(path) {
	const buf = readFileSync(path);
	check(buf.length >= 8, `${path}: shorter than 8 bytes`);
	const n = buf.readBigUInt64LE(0);
	check(n <= 100000000n, `${path}: header length ${n} over 100,000,000`);
	check(8n + n <= BigInt(buf.length), `${path}: header runs past the end of the file`);
	check(n % 8n === 0n, `${path}: header length ${n} is not a multiple of 8`);
	const dataStart = 8 + Number(n);
	let text;
	try {
		text = new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(8, dataStart));
	} catch {
		fail(`${path}: header is not UTF-8`);
	}
	const body = text.replace(/ +$/, "");
	check(text.length - body.length < 8 && body.endsWith("}"), `${path}: header padding is not 0-7 spaces after the object`);
	const top = parseJSON(text, path);
	check(top && top.obj, `${path}: header is not an object`);

	const tensors = new Map();
	let metadata = null;
	const keyOrder = [];
	for (const [k, v] of top) {
		keyOrder.push(k);
		if (k === "__metadata__") {
			check(v && v.obj, `${path}: __metadata__ is not an object`);
			metadata = {};
			for (const [mk, mv] of v) {
				check(typeof mv === "string", `${path}: __metadata__[${mk}] is not a string`);
				metadata[mk] = mv;
			}
			continue;
		}
		check(v && v.obj, `${path}: tensor ${k}: entry is not an object`);
		const fields = new Map(v);
		check(fields.size === 3 && fields.has("dtype") && fields.has("shape") && fields.has("data_offsets"),
			`${path}: tensor ${k}: fields are ${[...fields.keys()]}, want exactly dtype, shape, data_offsets`);
		const dtype = fields.get("dtype");
		check(BITS.has(dtype), `${path}: tensor ${k}: unknown dtype ${dtype}`);
		const shape = fields.get("shape");
		check(Array.isArray(shape), `${path}: tensor ${k}: shape is not an array`);
		const dims = shape.map((d, j) => uint(d, `${path}: tensor ${k}: shape[${j}]`));
		const offs = fields.get("data_offsets");
		check(Array.isArray(offs) && offs.length === 2, `${path}: tensor ${k}: data_offsets is not [begin, end]`);
		const [begin, end] = offs.map((o, j) => uint(o, `${path}: tensor ${k}: data_offsets[${j}]`));
		check(begin <= end, `${path}: tensor ${k}: begin after end`);
		const nbits = dims.reduce((a, b) => a * b, 1n) * BigInt(BITS.get(dtype));
		check(nbits % 8n === 0n, `${path}: tensor ${k}: ${nbits} bits is not whole bytes`);
		check(end - begin === nbits / 8n, `${path}: tensor ${k}: ${end - begin} bytes for ${nbits / 8n}`);
		tensors.set(k, { dtype, shape: dims.map(Number), begin, end });
	}

	const byOffset = [...tensors.entries()].sort(([, a], [, b]) =>
		a.begin < b.begin ? -1 : a.begin > b.begin ? 1 : a.end < b.end ? -1 : a.end > b.end ? 1 : 0);
	let start = 0n;
	for (const [name, t] of byOffset) {
		check(t.begin === start, `${path}: tensor ${name} begins at ${t.begin}, want ${start} (contiguous)`);
		start = t.end;
		const bytesPer = BITS.get(t.dtype) / 8;
		if (bytesPer >= 1) {
			check((BigInt(dataStart) + t.begin) % BigInt(bytesPer) === 0n, `${path}: tensor ${name} is not aligned to ${bytesPer} bytes`);
		}
		t.sha256 = createHash("sha256").update(buf.subarray(dataStart + Number(t.begin), dataStart + Number(t.end))).digest("hex");
	}
	check(start === BigInt(buf.length - dataStart), `${path}: tensors cover ${start} bytes of ${buf.length - dataStart}`);

	// The reference writer's layout: dtype rank descending, then name by bytes.
	const refOrder = [...tensors.keys()].sort((a, b) =>
		RANK.get(tensors.get(b).dtype) - RANK.get(tensors.get(a).dtype) || bytesCompare(a, b));
	const offOrder = byOffset.map(([name]) => name);
	check(JSON.stringify(refOrder) === JSON.stringify(offOrder), `${path}: layout ${offOrder} is not the reference writer's ${refOrder}`);
	// Compact JSON, __metadata__ first (keys sorted), then tensors in layout order.
	check(metadata !== null && metadata.format === "pt", `${path}: __metadata__.format is not "pt"`);
	const mdKeys = Object.keys(metadata).sort(bytesCompare);
	const want = "{" + [
		JSON.stringify("__metadata__") + ":{" + mdKeys.map((k) => JSON.stringify(k) + ":" + JSON.stringify(metadata[k])).join(",") + "}",
		...offOrder.map((name) => {
			const t = tensors.get(name);
			return JSON.stringify(name) + ":" + JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [Number(t.begin), Number(t.end)] });
		}),
	].join(",") + "}";
	check(body === want, `${path}: header is not the compact form\n got ${body}\nwant ${want}`);
	return { tensors, metadata, bytes: buf.length };
}

function checkDir(dir) {
	const indexPath = join(dir, "model.safetensors.index.json");
	const single = join(dir, "model.safetensors");
	const all = new Map();
	const files = [];
	let metadata;
	if (!existsSync(indexPath)) {
		const r = checkFile(single);
		files.push("model.safetensors");
		return { tensors: r.tensors, metadata: r.metadata, files, sharded: false };
	}
	check(!existsSync(single), `${dir}: both model.safetensors and the index`);
	const text = readFileSync(indexPath, "utf8");
	const top = parseJSON(text, indexPath);
	check(top && top.obj && top.length === 2 && top[0][0] === "metadata" && top[1][0] === "weight_map",
		`${indexPath}: want exactly {"metadata", "weight_map"}`);
	const md = new Map(top[0][1]);
	check(md.size === 1 && md.has("total_size"), `${indexPath}: metadata is not {total_size}`);
	const totalSize = uint(md.get("total_size"), `${indexPath}: total_size`);
	const weightMap = top[1][1];
	check(weightMap && weightMap.obj, `${indexPath}: weight_map is not an object`);
	// transformers: json.dumps(index, indent=2, sort_keys=True) + "\n"
	const names = weightMap.map(([k]) => k);
	check(JSON.stringify(names) === JSON.stringify([...names].sort(bytesCompare)), `${indexPath}: weight_map keys not sorted`);
	const pretty = `{\n  "metadata": {\n    "total_size": ${totalSize}\n  },\n  "weight_map": {` +
		weightMap.map(([k, v]) => `\n    ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(",") +
		(weightMap.length ? "\n  " : "") + "}\n}\n";
	check(text === pretty, `${indexPath}: not formatted as transformers formats it`);

	const shards = [...new Set(weightMap.map(([, v]) => v))].sort();
	const count = shards.length;
	shards.forEach((s, i) => {
		const want = `model-${String(i + 1).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.safetensors`;
		check(s === want, `${indexPath}: shard ${i + 1} is ${s}, want ${want}`);
	});
	let sum = 0n;
	const where = new Map(weightMap);
	for (const s of shards) {
		const r = checkFile(join(dir, s));
		files.push(s);
		metadata ??= r.metadata;
		check(JSON.stringify(r.metadata) === JSON.stringify(metadata), `${s}: metadata differs between shards`);
		for (const [name, t] of r.tensors) {
			check(where.get(name) === s, `${s}: holds ${name}, which weight_map puts in ${where.get(name)}`);
			check(!all.has(name), `${name} is in two shards`);
			all.set(name, t);
			sum += t.end - t.begin;
		}
	}
	for (const [name, s] of where) check(all.has(name), `weight_map: ${name} is not in ${s}`);
	check(sum === totalSize, `${indexPath}: total_size ${totalSize}, tensors hold ${sum}`);
	return { tensors: all, metadata, files, sharded: true, weightMap: Object.fromEntries(where), totalSize };
}

function compareExpect(got, expect) {
	const want = new Map(Object.entries(expect.tensors));
	check(got.tensors.size === want.size, `${got.tensors.size} tensors, want ${want.size}`);
	for (const [name, w] of want) {
		const t = got.tensors.get(name);
		check(t, `tensor ${JSON.stringify(name)} missing`);
		check(t.dtype === w.dtype && JSON.stringify(t.shape) === JSON.stringify(w.shape) && t.sha256 === w.sha256,
			`tensor ${JSON.stringify(name)}: ${t.dtype} ${t.shape} ${t.sha256}, want ${w.dtype} ${w.shape} ${w.sha256}`);
	}
	check(JSON.stringify(Object.entries(got.metadata).sort()) === JSON.stringify(Object.entries(expect.metadata).sort()),
		`metadata ${JSON.stringify(got.metadata)}, want ${JSON.stringify(expect.metadata)}`);
}

// A fetch serving dir as the "main" revision of a Hub model repo: 404 with
// X-Error-Code EntryNotFound for absent files, 206 for Range requests.
function localFetch(dir, log) {
	return async (url, init = {}) => {
		const u = new URL(url);
		const m = /^\/[^/]+\/[^/]+\/(?:resolve|raw)\/main\/(.+)$/.exec(u.pathname);
		const method = init.method ?? "GET";
		const range = new Headers(init.headers).get("Range");
		log.push(`${method} ${u.pathname}${range ? " " + range : ""}`);
		if (!m) return new Response("bad url", { status: 400 });
		const file = join(dir, decodeURIComponent(m[1]));
		if (!existsSync(file) || !statSync(file).isFile()) {
			return new Response("not found", { status: 404, headers: { "X-Error-Code": "EntryNotFound" } });
		}
		const data = readFileSync(file);
		const etag = '"' + createHash("sha256").update(data).digest("hex") + '"';
		if (method === "HEAD") {
			return new Response(null, { status: 200, headers: { ETag: etag, "Content-Length": String(data.length) } });
		}
		if (range) {
			const r = /^bytes=(\d+)-(\d+)$/.exec(range);
			if (!r) return new Response("bad range", { status: 416 });
			const a = Number(r[1]);
			const b = Math.min(Number(r[2]), data.length - 1);
			return new Response(data.subarray(a, b + 1), {
				status: 206,
				headers: { ETag: etag, "Content-Range": `bytes ${a}-${b}/${data.length}`, "Content-Length": String(b - a + 1) },
			});
		}
		return new Response(data, { status: 200, headers: { ETag: etag, "Content-Length": String(data.length) } });
	};
}

async function hubCheck(hubDir, dir, got, expect) {
	const require = createRequire(join(hubDir, "package.json"));
	const hubPkg = JSON.parse(readFileSync(join(hubDir, "node_modules", "@huggingface", "hub", "package.json"), "utf8"));
	const { parseSafetensorsMetadata } = require("@huggingface/hub");
	const log = [];
	const res = await parseSafetensorsMetadata({
		repo: "whet/local-check",
		computeParametersCount: true,
		fetch: localFetch(dir, log),
	});
	check(res.sharded === got.sharded, `hub: sharded=${res.sharded}, want ${got.sharded}`);
	const headers = res.sharded ? Object.values(res.headers) : [res.header];
	if (res.sharded) {
		check(JSON.stringify(Object.keys(res.headers).sort()) === JSON.stringify(got.files), `hub: shards ${Object.keys(res.headers)}`);
		check(JSON.stringify(res.index.weight_map) === JSON.stringify(got.weightMap), "hub: weight_map differs");
		check(BigInt(res.index.metadata.total_size) === got.totalSize, "hub: total_size differs");
	}
	let n = 0;
	for (const h of headers) {
		check(JSON.stringify(h.__metadata__) === JSON.stringify(got.metadata), `hub: __metadata__ ${JSON.stringify(h.__metadata__)}`);
		for (const [name, info] of Object.entries(h)) {
			if (name === "__metadata__") continue;
			n++;
			const w = expect.tensors[name];
			const t = got.tensors.get(name);
			check(w && info.dtype === w.dtype && JSON.stringify(info.shape) === JSON.stringify(w.shape), `hub: tensor ${name}: ${info.dtype} ${info.shape}`);
			check(BigInt(info.data_offsets[0]) === t.begin && BigInt(info.data_offsets[1]) === t.end, `hub: tensor ${name}: offsets ${info.data_offsets}`);
		}
	}
	check(n === Object.keys(expect.tensors).length, `hub: ${n} tensors`);
	// Parameter counts per dtype, computed from the expectations: the hub
	// skips scalars and F8_E8M0 (block scales) when there is no quantization.
	const want = {};
	for (const t of Object.values(expect.tensors)) {
		if (t.shape.length === 0 || t.dtype === "F8_E8M0") continue;
		want[t.dtype] = (want[t.dtype] ?? 0) + t.shape.reduce((a, b) => a * b, 1);
	}
	const gotCount = Object.fromEntries(Object.entries(res.parameterCount).filter(([, v]) => v !== 0));
	for (const k of Object.keys(want)) if (want[k] === 0) delete want[k];
	const sortEntries = (o) => JSON.stringify(Object.entries(o).sort());
	check(sortEntries(gotCount) === sortEntries(want), `hub: parameterCount ${JSON.stringify(res.parameterCount)}, want ${JSON.stringify(want)}`);
	return { version: hubPkg.version, tensors: n, requests: log.length };
}

const args = process.argv.slice(2);
let expectPath, hubDir, target;
for (let i = 0; i < args.length; i++) {
	if (args[i] === "--expect") expectPath = args[++i];
	else if (args[i] === "--hub") hubDir = args[++i];
	else target = args[i];
}
check(expectPath && target, "usage: node stcheck.mjs --expect EXPECT.json [--hub DIR] TARGET");
const expect = JSON.parse(readFileSync(expectPath, "utf8"));
const got = checkDir(target);
compareExpect(got, expect);
const result = { spec: "ok", files: got.files.length, tensors: got.tensors.size, sharded: got.sharded, node: process.version };
if (hubDir) {
	try {
		result.hub = await hubCheck(hubDir, target, got, expect);
	} catch (e) {
		fail("hub: " + (e && e.stack ? e.stack : e));
	}
}
console.log(JSON.stringify(result));
