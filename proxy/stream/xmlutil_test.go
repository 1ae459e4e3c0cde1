package stream

import "testing"

// AppendAttrs writes only the attributes that have a value, escaped.
func TestAppendAttrsSkipsEmptyValuesAndEscapes(t *testing.T) {
	tests := []struct {
		name  string
		pairs [][2]string
		want  string
	}{
		{"none", nil, ""},
		{"an empty value is left out", [][2]string{{"to", "a.example"}, {"from", ""}, {"id", "1"}}, ` to='a.example' id='1'`},
		{"quotes and markup are escaped", [][2]string{{"xml:lang", `e'n<`}}, ` xml:lang='e&#39;n&lt;'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(AppendAttrs(nil, tc.pairs...)); got != tc.want {
				t.Errorf("AppendAttrs = %q, want %q", got, tc.want)
			}
		})
	}
}
