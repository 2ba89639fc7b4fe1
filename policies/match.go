package policies

import (
	"regexp"
	"strings"
	"sync"
)

// The model's matchers, keyMatch2 (paths) and regexMatch (methods), as
// casbin's util package defines them but with each pattern compiled once:
// casbin compiles the pattern's regular expression on every call, and
// every link a page shows asks the policy (templates.View.Can), so that
// compiling was most of the CPU a page cost. The patterns come from the
// embedded policy and the public routes, so the cache is finite.

var (
	compiled    sync.Map // "k" or "r" + pattern -> *regexp.Regexp
	keyMatch2Re = regexp.MustCompile(`:[^/]+`)
)

// KeyMatch2 reports whether path matches pattern (":name" matches one
// segment, "/*" the rest), exactly as casbin's util.KeyMatch2 does.
func KeyMatch2(path, pattern string) bool {
	re, ok := compiled.Load("k" + pattern)
	if !ok {
		p := strings.ReplaceAll(pattern, "/*", "/.*")
		p = keyMatch2Re.ReplaceAllString(p, "$1[^/]+$2")
		re, _ = compiled.LoadOrStore("k"+pattern, regexp.MustCompile("^"+p+"$"))
	}
	return re.(*regexp.Regexp).MatchString(path)
}

// regexMatch is casbin's util.RegexMatch with expr compiled once (an
// invalid expression panics, as there; casbin turns that into an error).
func regexMatch(s, expr string) bool {
	re, ok := compiled.Load("r" + expr)
	if !ok {
		re, _ = compiled.LoadOrStore("r"+expr, regexp.MustCompile(expr))
	}
	return re.(*regexp.Regexp).MatchString(s)
}

func keyMatch2Func(args ...any) (any, error) {
	return KeyMatch2(args[0].(string), args[1].(string)), nil
}

func regexMatchFunc(args ...any) (any, error) {
	return regexMatch(args[0].(string), args[1].(string)), nil
}

// decisions remembers the policy's answers for concrete paths (links on
// pages, requests): the policy is embedded and never changes while the
// process runs. It forgets everything once it holds maxDecisions answers,
// so a crawler of endless ids cannot grow it without bound.
type decisions struct {
	mu sync.RWMutex
	m  map[string]bool
}

const maxDecisions = 1 << 16

func (d *decisions) get(k string) (allowed, ok bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	allowed, ok = d.m[k]
	return allowed, ok
}

func (d *decisions) put(k string, allowed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil || len(d.m) >= maxDecisions {
		d.m = make(map[string]bool)
	}
	d.m[k] = allowed
}
