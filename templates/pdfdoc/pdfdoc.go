// Package pdfdoc lays out cardata's business documents (invoices and credit
// notes) as A4 PDFs. It owns the page geometry (millimetres, which fpdf takes
// as floats); callers hand it finished text only, so amounts are formatted
// from exact decimals before they get here and never pass through a float.
package pdfdoc

import (
	"bytes"
	"fmt"
	"time"

	"github.com/go-pdf/fpdf"
)

// Line is one row of the line table, every cell already formatted.
type Line struct {
	Position, Description, Quantity, UnitPrice, Net string
}

// Invoice is the content of one invoice or credit note PDF, in print order.
type Invoice struct {
	Created      time.Time // creation and modification date: the same content renders the same bytes
	Title        string    // document metadata and heading, e.g. "Rechnung / Invoice CD-2026-000001"
	Author       string
	Footer       [2]string // two lines of seller data on every page
	FooterPrefix string    // before "Seite/Page n/N"
	SenderName   string
	SenderLine   string
	BillToLabel  string
	BuyerLines   []string
	Facts        [][2]string // label, value: the box on the right
	Subtitle     string      // bold, under the heading when set (a credit note's invoice)
	Reason       string      // printed under the heading when set
	Watermark    string      // printed large, light and diagonal on every page when set (a draft's preview)
	Columns      [5]string   // header of the line table
	Lines        []Line
	Totals       [][2]string // label, amount; the last one in bold
	TaxNote      string      // bold
	TaxDetails   []string
	Terms        []string
	SmallPrint   string
}

// Page geometry in millimetres.
var (
	cols       = []float64{9, 87, 20, 22, 32}
	lineHeight = 4.2
	pageBottom = 297.0 - 30
)

// Render lays out the document.
func Render(d Invoice) ([]byte, error) {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(d.Created.UTC())
	pdf.SetModificationDate(d.Created.UTC())
	pdf.SetCatalogSort(true)
	pdf.SetCompression(true)
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252: umlauts, ß, €, en dash
	pdf.SetTitle(d.Title, true)
	pdf.SetAuthor(d.Author, true)
	pdf.SetCreator("cardata", false)
	pdf.SetProducer("cardata billing", false)
	pdf.SetMargins(20, 18, 20)
	pdf.SetAutoPageBreak(true, 28)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-24)
		pdf.SetFont("Helvetica", "", 7)
		pdf.SetTextColor(90, 90, 90)
		pdf.CellFormat(0, 3.5, tr(d.Footer[0]), "T", 1, "C", false, 0, "")
		pdf.CellFormat(0, 3.5, tr(d.Footer[1]), "", 1, "C", false, 0, "")
		pdf.CellFormat(0, 3.5, tr(fmt.Sprintf("%s · Seite/Page %d/{nb}", d.FooterPrefix, pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	if d.Watermark != "" {
		pdf.SetHeaderFunc(func() {
			x, y := pdf.GetXY()
			pdf.SetFont("Helvetica", "B", 40)
			pdf.SetTextColor(215, 215, 215)
			w := pdf.GetStringWidth(tr(d.Watermark))
			pdf.TransformBegin()
			pdf.TransformRotate(35, 105, 160)
			pdf.Text(105-w/2, 160, tr(d.Watermark))
			pdf.TransformEnd()
			pdf.SetTextColor(0, 0, 0)
			pdf.SetXY(x, y)
		})
	}
	pdf.AddPage()
	pdf.SetTextColor(0, 0, 0)

	// Sender line and addresses.
	pdf.SetFont("Helvetica", "B", 14)
	pdf.CellFormat(0, 7, tr(d.SenderName), "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 8)
	pdf.CellFormat(0, 4, tr(d.SenderLine), "", 1, "L", false, 0, "")
	pdf.Ln(6)
	top := pdf.GetY()
	pdf.SetFont("Helvetica", "B", 9)
	pdf.CellFormat(78, 5, tr(d.BillToLabel), "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	for _, l := range d.BuyerLines {
		pdf.CellFormat(78, 5, tr(l), "", 1, "L", false, 0, "")
	}
	bottom := pdf.GetY()

	// Facts box on the right.
	pdf.SetY(top)
	for _, f := range d.Facts {
		pdf.SetX(100)
		pdf.SetFont("Helvetica", "", 8)
		pdf.CellFormat(52, 5, tr(f[0]), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "B", 9)
		pdf.CellFormat(38, 5, tr(f[1]), "", 1, "R", false, 0, "")
	}
	pdf.SetY(max(bottom, pdf.GetY()) + 8)
	pdf.SetFont("Helvetica", "B", 16)
	pdf.MultiCell(0, 8, tr(d.Title), "", "L", false)
	if d.Subtitle != "" {
		pdf.SetFont("Helvetica", "B", 10)
		pdf.MultiCell(0, 5, tr(d.Subtitle), "", "L", false)
	}
	if d.Reason != "" {
		pdf.SetFont("Helvetica", "", 9)
		pdf.MultiCell(0, 4.5, tr(d.Reason), "", "L", false)
	}
	pdf.Ln(3)

	// Lines.
	pdf.SetFont("Helvetica", "B", 8)
	pdf.SetFillColor(235, 238, 242)
	for i, h := range d.Columns {
		align := "L"
		if i >= 2 {
			align = "R"
		}
		pdf.CellFormat(cols[i], 7, tr(h), "B", 0, align, true, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont("Helvetica", "", 8)
	for _, l := range d.Lines {
		h := lineHeight * float64(max(1, len(pdf.SplitLines([]byte(tr(l.Description)), cols[1]-2))))
		if pdf.GetY()+h > pageBottom {
			pdf.AddPage()
		}
		y := pdf.GetY()
		x := pdf.GetX()
		pdf.CellFormat(cols[0], lineHeight, l.Position, "", 0, "L", false, 0, "")
		pdf.MultiCell(cols[1], lineHeight, tr(l.Description), "", "L", false)
		pdf.SetXY(x+cols[0]+cols[1], y)
		pdf.CellFormat(cols[2], lineHeight, l.Quantity, "", 0, "R", false, 0, "")
		pdf.CellFormat(cols[3], lineHeight, tr(l.UnitPrice), "", 0, "R", false, 0, "")
		pdf.CellFormat(cols[4], lineHeight, l.Net, "", 0, "R", false, 0, "")
		pdf.SetXY(x, y+h+1)
	}
	pdf.CellFormat(0, 1, "", "T", 1, "L", false, 0, "")
	pdf.Ln(2)

	// Totals.
	for i, t := range d.Totals {
		pdf.SetX(90)
		style := ""
		if i == len(d.Totals)-1 {
			style = "B"
		}
		pdf.SetFont("Helvetica", style, 9)
		pdf.CellFormat(65, 5.5, tr(t[0]), "", 0, "L", false, 0, "")
		pdf.CellFormat(35, 5.5, tr(t[1]), "", 1, "R", false, 0, "")
	}
	pdf.Ln(4)
	pdf.SetFont("Helvetica", "", 9)
	if d.TaxNote != "" {
		pdf.SetFont("Helvetica", "B", 9)
		pdf.MultiCell(0, 4.5, tr(d.TaxNote), "", "L", false)
		pdf.SetFont("Helvetica", "", 9)
	}
	for _, p := range d.TaxDetails {
		pdf.MultiCell(0, 4.5, tr(p), "", "L", false)
	}
	pdf.Ln(2)
	for _, p := range d.Terms {
		pdf.MultiCell(0, 4.5, tr(p), "", "L", false)
	}
	pdf.Ln(2)
	pdf.SetFont("Helvetica", "", 7)
	pdf.MultiCell(0, 3.5, tr(d.SmallPrint), "", "L", false)

	if err := pdf.Error(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
