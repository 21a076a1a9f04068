// Package server is `magma serve`: an HTTP server for agents and evaluation
// clients in front of a loaded model.Pipeline.
//
// It lives at the top level because serving is a concern of its own: it
// uses model (pipeline), llm (batched decoding, sampling, tokenizer), vision
// (image decoding), som (UI grounding marks) and model/action (robot action
// bins and statistics, grounding answers) and belongs to none of them. It
// links neither the training data readers (data) nor the benchmarks (eval);
// a test keeps it so.
//
// Endpoints:
//
//	POST /v1/chat/completions  OpenAI-compatible chat (text + image_url data: URIs), SSE streaming
//	POST /v1/ground            Set-of-Mark UI grounding: {"image","instruction","boxes"?} -> {"mark","point","box","answer"}
//	POST /act                  OpenVLA-style robot action: {"image","instruction","unnorm_key"} -> [7 floats]
//	GET  /v1/models, /v1/models/{id}, /health, /metrics (Prometheus text)
//
// Chat takes OpenAI's sampling parameters (temperature, top_p, seed, stop,
// presence/frequency penalties) and returns logprobs/top_logprobs; the
// parameters it does not implement (response_format other than text,
// tools, functions, logit_bias) are refused with a 400 naming them. The
// "model" field must be one of the served names (Config.ModelName and
// ModelAliases) or absent.
//
// Concurrency: every generating request is admitted into a bounded queue
// (MaxBatch + MaxQueue requests running or waiting; the next: 429 +
// Retry-After), embedded (vision tower under a semaphore) in
// its handler goroutine, and handed to one worker that owns an
// llm.BatchDecoder: between decode steps waiting sequences are prefilled
// into free slots, and each step advances all active sequences in one
// batched graph. Client disconnects and per-request timeouts cancel the
// request context; the worker drops such sequences before its next step.
// Shutdown drains in-flight requests until its deadline with the listener
// open (/health answers 503 "draining", new requests 503), then fails the
// rest with 503 and closes the port.
//
// Every input problem is a 4xx JSON error in OpenAI's shape
// ({"error": {"message", "type", "param", "code"}}); a recover middleware
// turns a panic into a logged 500 as a last resort. No file path from a
// request is ever opened: images come as data: URIs, base64 or (with
// AllowRemoteImages) http(s) URLs.
package server
