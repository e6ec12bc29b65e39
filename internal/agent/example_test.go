package agent_test

import (
	"fmt"

	"github.com/keyhole/keyhole/internal/agent"
)

func ExampleDecode() {
	d, err := agent.Decode([]byte(`kind: agent
name: local-helper
provider: openai
llm: f/ollama
model: llama3.2
budget: {tokens: 20000}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Name, d.Provider, d.Model, d.Budget.Tokens)

	_, err = agent.Decode([]byte("kind: agent\nname: x\nprovider: gemini\n"))
	fmt.Println(err)
	// Output:
	// local-helper openai llama3.2 20000
	// agent x: provider: "gemini" is not a provider: use anthropic or openai
	// llm: missing: name the resource holding the provider's API key, such as f/bot/anthropic
	// model: missing: name the provider's model, such as claude-sonnet-5-5
}
