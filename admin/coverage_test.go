package admin

import (
	"math"
	"strconv"
	"testing"
)

// luminance is the WCAG relative luminance of a colour written #rrggbb.
func luminance(t *testing.T, hex string) float64 {
	t.Helper()
	if len(hex) != 7 || hex[0] != '#' {
		t.Fatalf("colour %q is not #rrggbb", hex)
	}
	var l [3]float64
	for i := range l {
		v, err := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		if err != nil {
			t.Fatalf("colour %q: %v", hex, err)
		}
		c := float64(v) / 255
		if c <= 0.03928 {
			l[i] = c / 12.92
		} else {
			l[i] = math.Pow((c+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
}

func contrast(t *testing.T, a, b string) float64 {
	la, lb := luminance(t, a), luminance(t, b)
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)
}

// Every coverage tile's text passes WCAG AA (4.5:1) against its fill, for
// every number of providers, active and paused (against both colours of
// the paused hatching).
func TestCoverageTileColoursPassWCAGAA(t *testing.T) {
	t.Parallel()
	if got := contrast(t, "#6fa3d8", "#ffffff"); math.Abs(got-2.66) > 0.01 {
		t.Fatalf("contrast formula: white on #6FA3D8 is %.2f, want 2.66", got)
	}
	for n := 0; n <= 6; n++ {
		for _, paused := range []bool{false, true} {
			fill, ink := coverageFill(n, paused)
			grounds := []string{fill}
			if paused {
				grounds = []string{pausedGround, pausedStripe}
			}
			for _, g := range grounds {
				if c := contrast(t, g, ink); c < 4.5 {
					t.Errorf("%d providers (paused %v): ink %s on %s has contrast %.2f:1, want at least 4.5:1", n, paused, ink, g, c)
				}
			}
		}
	}
}
