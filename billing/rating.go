package billing

import (
	"github.com/shopspring/decimal"
)

// Slice is the part of a run of units that falls into one tier.
type Slice struct {
	From, To  int64 // unit positions within the month, inclusive
	Quantity  int64
	UnitPrice decimal.Decimal
	Tier      PriceItem
}

// Amount is the slice's net amount, rounded half-up to the cent once.
func (s Slice) Amount() decimal.Decimal {
	return RoundCents(s.UnitPrice.Mul(decimal.NewFromInt(s.Quantity)))
}

// Graduate prices count units that occupy positions base+1 .. base+count of
// a month under graduated tiers: each unit is priced in its own tier (the
// 10,001st unit of a month costs the second tier's price even when the
// first 10,000 were billed earlier). Tiers must start at 1 and be ordered.
// It returns one slice per tier touched, in order; ok is false when some
// position has no tier (an incomplete price list).
func Graduate(tiers []PriceItem, base, count int64) (slices []Slice, ok bool) {
	if count <= 0 {
		return nil, true
	}
	pos := base + 1
	last := base + count
	for _, t := range tiers {
		if pos > last {
			break
		}
		end := last
		if t.TierTo != nil && *t.TierTo < end {
			end = *t.TierTo
		}
		if t.TierFrom > pos || end < pos {
			if t.TierFrom > pos {
				return slices, false // a gap in the tiers
			}
			continue // this tier lies wholly before pos
		}
		slices = append(slices, Slice{From: pos, To: end, Quantity: end - pos + 1, UnitPrice: t.UnitPrice, Tier: t})
		pos = end + 1
	}
	return slices, pos > last
}

// SupportBlocks is the number of started 15-minute blocks in minutes.
func SupportBlocks(minutes int64) int64 {
	if minutes <= 0 {
		return 0
	}
	return (minutes + SupportBlock - 1) / SupportBlock
}
