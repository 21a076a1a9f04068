package action

import "strings"

// Prompt is the robot question of LIBERO samples and of the server's /act:
// OpenVLA's wording, which Magma's robot finetuning uses, in a chat turn.
// The instruction is lower-cased as OpenVLA does, surrounding space and a
// closing full stop dropped so the question ends in one "?".
func Prompt(instruction string) string {
	return "What action should the robot take to " + strings.ToLower(strings.TrimRight(strings.TrimSpace(instruction), ".")) + "?"
}
