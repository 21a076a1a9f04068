package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/magma-go/magma/llm/tokenizer"
)

// tokenizeLong is tokenize's --help.
const tokenizeLong = `Reads JSON lines on stdin, writes one JSON line per input line on stdout:
  (default)  {"text": "..."}                 -> {"ids": [...]}
  --decode   {"ids": [...]}                  -> {"text": "..."}
  --chat     {"messages": [{"role","content"}...], "system"?, "no_system"?,
              "image_start_end"?, "add_generation_prompt"? (default true)}
                                             -> {"ids": [...]}
  --chat --train  same input                 -> {"ids": [...], "labels": [...]}
The first bad line stops the command with "line N: reason".
--add-magma-tokens --out DIR writes Magma's tokenizer (Llama-3 + <pad>, <image>,
<image_start>, <image_end>; bos/eos/pad) from the --tokenizer directory.
--tokenizer defaults to assets/tokenizer/magma (or $MAGMA_TOKENIZER/magma).`

// tokenize wires flags to llm/tokenizer; all logic lives in that package.
func newTokenizeCmd() *cobra.Command {
	var (
		path, addOut                string
		decode, chat, train, bos    bool
		skipSpecial, addMagmaTokens bool
	)
	cmd := &cobra.Command{
		Use:   "tokenize",
		Short: "Encode/decode JSON lines with the Llama-3/Magma tokenizer",
		Long:  tokenizeLong,
		Example: `  echo '{"text": "Hello world"}' | magma tokenize
  echo '{"ids": [9906, 1917]}' | magma tokenize --decode
  echo '{"messages": [{"role": "user", "content": "<image>\nWhat is this?"}]}' | magma tokenize --chat
  magma tokenize --add-magma-tokens --tokenizer assets/tokenizer/llama3 --out /tmp/magma-tok`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addMagmaTokens {
				if path == "" || addOut == "" {
					return errors.New("--add-magma-tokens needs --tokenizer SRC_DIR and --out DST_DIR")
				}
				return tokenizer.WriteMagmaTokenizer(path, addOut)
			}
			if path == "" {
				p, err := tokenizer.Locate("magma")
				if err != nil {
					return err
				}
				path = p
			}
			tok, err := tokenizer.Load(path)
			if err != nil {
				return err
			}
			mode, err := streamMode(decode, chat, train)
			if err != nil {
				return err
			}
			return tok.RunJSONLines(cmd.InOrStdin(), cmd.OutOrStdout(), mode,
				tokenizer.StreamOptions{AddBOS: bos, SkipSpecial: skipSpecial})
		},
	}
	f := cmd.Flags()
	f.StringVar(&path, "tokenizer", "", "tokenizer directory or tokenizer.json")
	f.BoolVar(&decode, "decode", false, `read {"ids"}, write {"text"}`)
	f.BoolVar(&chat, "chat", false, "read conversations and render them with the chat template")
	f.BoolVar(&train, "train", false, "with --chat: also write training labels (-100 outside assistant answers)")
	f.BoolVar(&bos, "bos", false, "prepend the BOS id when encoding plain text")
	f.BoolVar(&skipSpecial, "skip-special", false, "with --decode: drop special tokens")
	f.BoolVar(&addMagmaTokens, "add-magma-tokens", false, "write Magma's tokenizer variant to --out and exit")
	f.StringVar(&addOut, "out", "", "output directory for --add-magma-tokens")
	return cmd
}

// streamMode is the JSON-lines mode --decode, --chat and --train select.
func streamMode(decode, chat, train bool) (tokenizer.StreamMode, error) {
	switch {
	case decode && chat:
		return 0, errors.New("--decode and --chat are exclusive")
	case train && !chat:
		return 0, errors.New("--train needs --chat")
	case decode:
		return tokenizer.StreamDecode, nil
	case chat && train:
		return tokenizer.StreamTrain, nil
	case chat:
		return tokenizer.StreamChat, nil
	}
	return tokenizer.StreamEncode, nil
}
