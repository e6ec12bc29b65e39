// Package tool defines keyhole's tools, toolsets and routes and calls HTTP
// tools with credentials the caller never sees.
//
// # Definitions
//
// Users write definitions in YAML (or JSON), one document per object:
//
//	kind: tool
//	name: search_invoices
//	input:
//	  type: object
//	  properties:
//	    email: {type: string, format: email}
//	  required: [email]
//	http:
//	  method: GET
//	  url: https://api.stripe.com/v1/invoices/search
//	  query:
//	    query: "customer_email:'{{ .email | squote }}'"
//	  auth: {resource: f/bot/stripe, bearer: apiKey}
//	  timeout: 10s
//	output: '.data[:5]'
//
// [DecodeTool], [DecodeToolset] and [DecodeRoute] (or [Decode], by kind)
// decode one document strictly: a field the definition does not have is an
// error that names it and its line. Definitions marshal back to the same
// JSON and YAML.
//
// # Compiling and validating
//
// [Compile] turns a [Definition] into a [Tool]: the input JSON Schema,
// every template and the output jq expression are compiled once, and every
// problem is reported with the field it is in. [Validate] also checks that
// the URL's host is among the allowed hosts of the resource the tool's auth
// names; keyhole apply calls it before storing a tool.
//
// # Templates
//
// URL paths, query parameters, headers, form fields and the string leaves
// of a JSON body are Go templates over the validated arguments. keyhole
// appends an escaper to every action, so a value cannot change the request's
// shape whatever the template says: a path value is one escaped path segment
// (never empty, "." or ".."); query and form values are encoded by net/url;
// header values holding CR, LF or other control characters are refused; a
// body leaf that is one action keeps its value's JSON type, and any other
// leaf is a JSON string. The functions squote and dquote escape a value for
// a quoted string of a search language such as Stripe's; an action placed
// right after a quote without them is refused when the tool compiles. The
// functions json, lower, upper, trim and default are also available.
//
// # Calls
//
// An [Executor] makes calls: it validates the arguments, builds the request,
// checks the credential's allowed hosts again, applies the credential as the
// tool's [Auth] says, caps the response size, applies the output expression
// and redacts every secret value of the credential (see package redact). A
// [Result] carries everything an audit record needs. Arguments for records
// come from [Tool.MaskArguments], which hides properties marked
// "x-sensitive": true.
//
// The credential never follows a redirect to another host, plain HTTP is
// used only towards loopback hosts that allowed_hosts names, and the
// transport refuses host names that resolve to loopback, link-local or
// unspecified addresses; see [CheckURL] and [NewTransport].
package tool
