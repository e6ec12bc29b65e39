// Package redact replaces secret values in data that leaves keyhole's
// trusted process: tool results, proxied responses, headers and logs.
//
// A [Redactor] is built once from the secret values a call used. It matches
// each secret and the encoded forms an upstream service is likely to echo it
// in: URL query and path escaping, JSON string escaping, and base64 (standard
// and URL alphabets, at any byte alignment inside a longer base64 text). Every
// match becomes [Mask].
//
// [Redactor.Bytes] and [Redactor.String] redact whole values. [Redactor.Reader]
// and [Redactor.Writer] redact streams: a secret split across two chunks is
// still found, and only the bytes that could begin a secret are held back, so
// a streamed response (server-sent events, for example) flows on as it
// arrives.
package redact
