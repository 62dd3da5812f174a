package report

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Colors of the modes in charts.
var modeColors = map[string]string{
	ModeDirect:   "#495057",
	ModeRPCProxy: "#e8590c",
	ModeHAProxy:  "#1c7ed6",
}

// Chart geometry, in SVG user units.
const (
	chartWidth  = 1100
	panelWidth  = 500
	panelHeight = 230
	rowHeight   = 330
	marginLeft  = 70
	marginTop   = 70
	maxNines    = 4.0 // the y axis ends at 99.99%
)

// WriteSVG draws, for every scenario, the distribution of turn latency and
// of request latency in each mode: x is latency on a log scale, y the share
// of values at most x on a "nines" scale (50%, 90%, 99%, 99.9%, 99.99%), so
// the tail that p99 budgets care about is as visible as the median.
func (r *Report) WriteSVG(w io.Writer) error {
	var b strings.Builder
	height := 40 + rowHeight*len(r.Scenarios)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">rpcproxy bench %s: latency distributions (medians' runs)</text>`+"\n",
		marginLeft, esc(r.Timestamp))
	for i, s := range r.Scenarios {
		top := 40 + i*rowHeight
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%c. %s</text>`+"\n", 10, top+20, 'a'+i, esc(s.Title))
		var turn, req []curve
		for _, m := range s.Modes {
			turn = append(turn, curve{mode: m.Mode, points: m.TurnCDF, p50: m.Median.TurnP50, p99: m.Median.TurnP99})
			req = append(req, curve{mode: m.Mode, points: m.ReqCDF, p50: m.Median.ReqP50, p99: m.Median.ReqP99})
		}
		panel(&b, marginLeft, top+marginTop-20, "turn latency (session.send → session.idle)", turn)
		panel(&b, marginLeft+panelWidth+70, top+marginTop-20, "request latency (request → answer)", req)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

type curve struct {
	mode     string
	points   []Point
	p50, p99 float64
}

func esc(s string) string { return html.EscapeString(s) }

// nines maps a cumulative fraction to the y scale: -log10(1-f), capped.
func nines(f float64) float64 {
	if f >= 1 {
		return maxNines
	}
	return math.Min(-math.Log10(1-f), maxNines)
}

// panel draws one CDF chart whose plot area starts at (x0, y0).
func panel(b *strings.Builder, x0, y0 int, title string, curves []curve) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range curves {
		for _, p := range c.points {
			if p.Micros > 0 {
				lo, hi = math.Min(lo, p.Micros), math.Max(hi, p.Micros)
			}
		}
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, y0-8, esc(title))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#adb5bd"/>`+"\n", x0, y0, panelWidth, panelHeight)
	if math.IsInf(lo, 1) {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#868e96">no data</text>`+"\n", x0+panelWidth/2-25, y0+panelHeight/2)
		return
	}
	dmin, dmax := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dmax <= dmin {
		dmax = dmin + 1
	}
	px := func(us float64) float64 {
		return float64(x0) + (math.Log10(math.Max(us, math.Pow(10, dmin)))-dmin)/(dmax-dmin)*panelWidth
	}
	py := func(f float64) float64 { return float64(y0+panelHeight) - nines(f)/maxNines*panelHeight }

	// Grid and axes.
	for d := dmin; d <= dmax; d++ {
		x := px(math.Pow(10, d))
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e9ecef"/>`+"\n", x, y0, x, y0+panelHeight)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#495057">%s</text>`+"\n", x, y0+panelHeight+16, esc(Micros(math.Pow(10, d))))
	}
	for _, t := range []struct {
		f     float64
		label string
	}{{0, "0%"}, {0.5, "50%"}, {0.9, "90%"}, {0.99, "99%"}, {0.999, "99.9%"}, {0.9999, "99.99%"}} {
		y := py(t.f)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e9ecef"/>`+"\n", x0, y, x0+panelWidth, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#495057">%s</text>`+"\n", x0-6, y+4, t.label)
	}

	for i, c := range curves {
		color := modeColors[c.mode]
		if color == "" {
			color = "black"
		}
		if len(c.points) > 0 {
			var pts strings.Builder
			for _, p := range c.points {
				fmt.Fprintf(&pts, "%.1f,%.1f ", px(p.Micros), py(p.Fraction))
			}
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.TrimSpace(pts.String()))
		}
		// Legend, top left inside the plot, where the curves are not.
		ly := y0 + 16 + i*16
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="4" fill="%s"/>`+"\n", x0+8, ly-5, color)
		fmt.Fprintf(b, `<text x="%d" y="%d">%s  p50 %s  p99 %s</text>`+"\n", x0+26, ly, esc(c.mode), esc(Micros(c.p50)), esc(Micros(c.p99)))
	}
}
