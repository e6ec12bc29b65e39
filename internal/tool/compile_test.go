package tool

import (
	"strings"
	"testing"
)

// mustDecode decodes a tool definition or fails the test.
func mustDecode(t testing.TB, doc string) *Definition {
	t.Helper()
	d, err := DecodeTool([]byte(doc))
	if err != nil {
		t.Fatalf("DecodeTool: %v", err)
	}
	return d
}

func TestCompileRefusesBadDefinitions(t *testing.T) {
	t.Parallel()
	const head = "kind: tool\nname: t\n"
	tests := []struct {
		name, doc, want string
	}{
		{"bad name", "kind: tool\nname: 'no spaces'\nhttp: {url: https://a.example/}\n",
			`name "no spaces"`},
		{"no http", head, "http: missing"},
		{"bad template", head + "http: {url: 'https://a.example/{{ .id'}\n",
			"http.url: bad template"},
		{"unknown function", head + "http: {url: https://a.example/, query: {q: '{{ .x | shout }}'}}\n",
			`http.query.q: bad template`},
		{"template call", head + "http: {url: https://a.example/, query: {q: '{{ template \"x\" }}'}}\n",
			"http.query.q"},
		{"bad jq", head + "http: {url: https://a.example/}\noutput: '.data[ | x'\n",
			`output: bad jq expression ".data[ | x"`},
		{"undefined jq function", head + "http: {url: https://a.example/}\noutput: 'nosuch(1)'\n",
			"output: bad jq expression"},
		{"templated host", head + "http: {url: 'https://{{ .host }}/x'}\n",
			"the host must be fixed text"},
		{"templated URL query", head + "http: {url: 'https://a.example/x?q={{ .q }}'}\n",
			"put templated parameters under http.query"},
		{"fragment", head + "http: {url: 'https://a.example/x#frag'}\n", "fragments"},
		{"relative URL", head + "http: {url: /v1/x}\n", "must be an absolute https URL"},
		{"ftp", head + "http: {url: 'ftp://a.example/x'}\n", "must be an absolute https URL"},
		{"upper-case host", head + "http: {url: 'https://A.example/x'}\n", "lower case"},
		{"numeric host", head + "http: {url: 'https://2130706433/x'}\n", "numeric host names"},
		{"user info", head + "http: {url: 'https://api.stripe.com@evil.example/x'}\n",
			"not a valid URL with a host"},
		{"body and form", head + "http: {method: POST, url: https://a.example/, body: {a: b}, form: {a: b}}\n",
			"body and form cannot both be set"},
		{"GET with body", head + "http: {url: https://a.example/, body: {a: b}}\n",
			"a GET request carries no body"},
		{"bad method", head + "http: {method: TRACE, url: https://a.example/}\n",
			`http.method "TRACE"`},
		{"unescaped quote", head + "http: {url: https://a.example/, query: {query: \"email:'{{ .e }}'\"}}\n",
			"end it with | squote"},
		{"unescaped double quote", head + "http: {url: https://a.example/, query: {query: 'name:\"{{ .e }}\"'}}\n",
			"end it with | dquote"},
		{"wrong quote escaper", head + "http: {url: https://a.example/, query: {query: \"email:'{{ .e | dquote }}'\"}}\n",
			"end it with | squote"},
		{"second action in quotes", head + "http: {url: https://a.example/, query: {query: \"a:'{{ .a | squote }}{{ .b }}'\"}}\n",
			"{{.b}} sits inside quotes"},
		{"action in a later quote", head + "http: {url: https://a.example/, query: {query: \"a:'{{ .a | squote }}' AND b:'x{{ .b }}'\"}}\n",
			"{{.b}} sits inside quotes"},
		{"two auth kinds", head + "http: {url: https://a.example/, auth: {resource: r, bearer: k, header: {name: x, value: k}}}\n",
			"set exactly one of bearer"},
		{"auth without resource", head + "http: {url: https://a.example/, auth: {bearer: k}}\n",
			"http.auth.resource: missing"},
		{"reserved header", head + "http: {url: https://a.example/, headers: {Host: x}}\n",
			"Host is set by keyhole"},
		{"bad header name", head + "http: {url: https://a.example/, headers: {'a b': x}}\n",
			`"a b" is not a valid header name`},
		{"timeout too long", head + "http: {url: https://a.example/, timeout: 1h}\n",
			"http.timeout 1h0m0s"},
		{"schema not object", head + "input: {type: string}\nhttp: {url: https://a.example/}\n",
			"input: the schema must have type: object"},
		{"bad schema", head + "input: {type: object, properties: {a: {type: strong}}}\nhttp: {url: https://a.example/}\n",
			"input: invalid JSON Schema"},
		{"schema loads a file", head + "input: {type: object, properties: {a: {$ref: 'file:///etc/passwd'}}}\nhttp: {url: https://a.example/}\n",
			"keep the schema self-contained"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Compile(mustDecode(t, tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	t.Parallel()
	d := mustDecode(t, "kind: tool\nname: t\nhttp: {method: TRACE, url: 'https://a.example/{{'}\n"+
		"output: '.['\n")
	_, err := Compile(d)
	if err == nil {
		t.Fatal("Compile succeeded")
	}
	for _, want := range []string{"tool t:", "http.method", "http.url", "output"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestCompiledToolDescribesItself(t *testing.T) {
	t.Parallel()
	tl, err := Compile(mustDecode(t, `kind: tool
name: login
description: Sign in
input:
  type: object
  properties:
    user: {type: string}
    password: {type: string, x-sensitive: true}
    cards:
      type: array
      items: {type: object, properties: {pan: {type: string, x-sensitive: true}}}
http:
  method: POST
  url: https://auth.example.com:8443/login
  body: {user: "{{ .user }}", password: "{{ .password }}"}
  auth: {resource: f/auth, bearer: token}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{tl.Name(), tl.Description(), tl.Method(), tl.Host(), strings.Join(tl.Resources(), ","),
		strings.Join(tl.SensitiveFields(), ",")}
	want := []string{"login", "Sign in", "POST", "auth.example.com:8443", "f/auth", "/cards/*/pan,/password"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %q, want %q", got[i], want[i])
		}
	}
	if !strings.Contains(string(tl.InputSchema()), `"x-sensitive":true`) {
		t.Errorf("InputSchema = %s", tl.InputSchema())
	}

	masked := string(tl.MaskArguments([]byte(
		`{"user":"ann","password":"hunter2-canary","cards":[{"pan":"4242-canary"},{"pan":"5555-canary"}]}`)))
	if strings.Contains(masked, "canary") || !strings.Contains(masked, `"user":"ann"`) ||
		strings.Count(masked, "[SENSITIVE]") != 3 {
		t.Errorf("MaskArguments = %s", masked)
	}
	if got := string(tl.MaskArguments([]byte(`not json`))); got != `"[SENSITIVE]"` {
		t.Errorf("MaskArguments(not json) = %s", got)
	}
}
