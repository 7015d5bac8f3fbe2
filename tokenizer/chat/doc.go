// Package chat renders Hugging Face chat templates exactly as transformers'
// apply_chat_template does, without Python.
//
// A chat template is a Jinja2 template: the chat_template of a model's
// tokenizer_config.json (a string, or a list of named templates), or its
// chat_template.jinja file. transformers renders it in an
// ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the
// loopcontrols extension ({% break %}, {% continue %}), its {% generation %}
// tag, its tojson filter (json.dumps with ensure_ascii=False and optional
// indent, separators, sort_keys) and the globals raise_exception(msg) and
// strftime_now(fmt). The template sees messages, add_generation_prompt,
// tools and documents (None when not given), the tokenizer's special tokens
// (bos_token, eos_token, ...) and any extra keyword arguments.
//
//	t, tok, err := chat.FromTokenizerConfig(data, "tokenizer_config.json", "")
//	text, err := t.Render(messages, tok.Apply(chat.Options{AddGenerationPrompt: true}))
//	text, spans, err := t.RenderSpans(messages, tok.Apply(chat.Options{}))
//
// # The engine
//
// The package has its own Jinja2 engine, written to Jinja2 3.1's lexer,
// parser, compiler and runtime: the same whitespace handling (trim_blocks,
// lstrip_blocks, "-" and "+" markers, comments, raw blocks, the dropped
// final newline), the same precedence and string-literal escapes, Python's
// semantics for values (truthiness, int/float/bool arithmetic, comparisons
// and their TypeErrors, str(), repr() when a list or dict is printed,
// str/dict/list methods, slicing by code point, Unicode case mapping as
// CPython does it) and Jinja2's for Undefined, scoping (loop iterations and
// macros get their own scope; namespace() crosses it), loop variables,
// for-else, macros, set blocks, filter blocks, with blocks and constant
// folding. Filters: abs, attr, batch, capitalize, center, count, d,
// default, dictsort, e, escape, first, float, forceescape, format, indent,
// int, items, join, last, length, list, lower, map, max, min, reject,
// rejectattr, replace, reverse, round, safe, select, selectattr, slice,
// sort, string, sum, title, tojson, trim, truncate, unique, upper,
// wordcount. All of Jinja2's tests. Globals: range, dict, namespace,
// joiner, raise_exception, strftime_now.
//
// It is checked byte for byte against Jinja2 itself (testdata/render_golden.py
// writes the golden files; the tests do not need Python): 56 real chat
// templates on 28 conversations each, 228 targeted snippets and 1,200
// random templates.
//
// Not implemented, and reported as errors rather than rendered differently:
// template inheritance and loading ({% extends %}, {% block %},
// {% include %}, {% import %}), {% call %} blocks and caller(), recursive
// loops, *args/**kwargs in calls, the filters groupby, wordwrap, pprint,
// random, striptags, urlencode, urlize, xmlattr, filesizeformat, the
// globals cycler and lipsum, a few str methods (encode, translate, ...),
// str.format with nested fields, integers beyond 64 bits, and printing a
// function or generator (Python prints its memory address). Jinja2's
// sandbox limits apply (range() up to 100,000 items, no mutating methods),
// and the engine adds its own against runaway templates (loop iterations,
// macro recursion, output size).
//
// # Spans
//
// RenderSpans reports, for each message, the bytes of the rendered text
// that belong to it, so that a trainer can compute the loss on assistant
// turns only; see its documentation for the method.
package chat
