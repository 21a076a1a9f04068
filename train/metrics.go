package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/magma-go/magma/data"
)

// MetricsFile is the metrics log in a run folder: one JSON object per
// logged update.
const MetricsFile = "metrics.jsonl"

// Metric is one line of metrics.jsonl. Rates and data_wait_ms are over the
// updates since the previous line; data_wait_ms is the mean time per update
// the trainer spent blocked in data.Stream.Next.
type Metric struct {
	Step        int     `json:"step"`
	Loss        float64 `json:"loss"`
	LR          float64 `json:"lr"`
	GradNorm    float64 `json:"grad_norm"`
	TokensPerS  float64 `json:"tokens_per_s"`
	SamplesPerS float64 `json:"samples_per_s"`
	DataWaitMS  float64 `json:"data_wait_ms"`
	StepMS      float64 `json:"step_ms"`
	ElapsedS    float64 `json:"elapsed_s"`
	Tokens      int64   `json:"tokens"`
}

type metricsWriter struct {
	f *os.File
}

// openMetrics opens metrics.jsonl for appending, first dropping lines past
// step keep (a run that died after its last checkpoint logged steps that
// the resumed run will log again). keep 0 starts a fresh file.
func openMetrics(path string, keep int) (*metricsWriter, error) {
	var kept []byte
	if keep > 0 {
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, line := range bytes.Split(old, []byte("\n")) {
			var m Metric
			if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &m) != nil || m.Step > keep {
				continue
			}
			kept = append(append(kept, line...), '\n')
		}
	}
	if err := writeFileAtomic(path, kept); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsWriter{f: f}, nil
}

func (w *metricsWriter) Write(m Metric) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.f.Write(append(b, '\n'))
	return err
}

func (w *metricsWriter) Close() error { return w.f.Close() }

// ReadMetrics reads a metrics.jsonl file; bad lines are errors naming the line.
func ReadMetrics(path string) ([]Metric, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Metric
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m Metric
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// progress draws a one-line bar on a terminal (redrawn after every update,
// at most 5 times a second: percentage, steps, updates/s, tokens/s, last
// logged loss and lr, elapsed and ETA), or plain lines every log_every
// updates otherwise (files, pipes, CI logs).
type progress struct {
	w     io.Writer
	tty   bool
	total int
	start int
	t0    time.Time
	drawn bool
	last  Metric    // newest logged metrics (loss, lr, tokens/s)
	drawT time.Time // last redraw
}

func newProgress(w io.Writer, force *bool, total, start int) *progress {
	tty := data.IsTerminal(w)
	if force != nil {
		tty = *force
	}
	return &progress{w: w, tty: tty, total: total, start: start, t0: time.Now()}
}

func fmtDuration(s float64) string {
	if s < 0 || s > 1e8 {
		return "?"
	}
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	return d.String()
}

func (p *progress) eta(step int) float64 {
	if done := step - p.start; done > 0 {
		return time.Since(p.t0).Seconds() / float64(done) * float64(p.total-step)
	}
	return -1
}

// update reports logged metrics: a line without a terminal, else a redraw.
func (p *progress) update(m Metric) {
	p.last = m
	if !p.tty {
		fmt.Fprintf(p.w, "step %d/%d loss %.4f lr %.3g grad_norm %.3g tokens/s %.0f data_wait %.1fms eta %s\n",
			m.Step, p.total, m.Loss, m.LR, m.GradNorm, m.TokensPerS, m.DataWaitMS, fmtDuration(p.eta(m.Step)))
		return
	}
	p.draw(m.Step, true)
}

// tick is called after every update; on a terminal it redraws the bar.
func (p *progress) tick(step int) {
	if p.tty {
		p.draw(step, step == p.total)
	}
}

func (p *progress) draw(step int, force bool) {
	now := time.Now()
	if !force && now.Sub(p.drawT) < 200*time.Millisecond {
		return
	}
	p.drawT = now
	const width = 24
	frac := float64(step) / float64(max(1, p.total))
	fill := min(width, int(frac*width))
	bar := strings.Repeat("█", fill) + strings.Repeat("░", width-fill)
	rate := 0.0
	if el := now.Sub(p.t0).Seconds(); el > 0 {
		rate = float64(step-p.start) / el
	}
	loss := "loss -"
	if p.last.Step > 0 {
		loss = fmt.Sprintf("loss %.4f lr %.2e", p.last.Loss, p.last.LR)
	}
	fmt.Fprintf(p.w, "\r\033[K%3.0f%% %s %d/%d [%s<%s, %.2f it/s, %.0f tok/s] %s",
		100*frac, bar, step, p.total, fmtDuration(now.Sub(p.t0).Seconds()), fmtDuration(p.eta(step)), rate, p.last.TokensPerS, loss)
	p.drawn = true
}

func (p *progress) done() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
