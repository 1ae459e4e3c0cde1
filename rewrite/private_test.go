package rewrite

import (
	"errors"
	"testing"
)

func TestPrivate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		has  bool
		want string // WithPrivate's result
	}{
		{
			name: "a message without private gets it as its last child",
			in:   "<message from='bob@example.net/desk' to='alice@example.com/phone' type='chat' id='p1'><body>hi</body></message>",
			want: "<message from='bob@example.net/desk' to='alice@example.com/phone' type='chat' id='p1'><body>hi</body>" + private + "</message>",
		},
		{
			name: "a message that kept private is unchanged",
			in:   "<message to='alice@example.com/phone' type='chat' id='p1'><body>hi</body>" + private + "</message>",
			has:  true,
			want: "<message to='alice@example.com/phone' type='chat' id='p1'><body>hi</body>" + private + "</message>",
		},
		{
			name: "a prefixed private counts",
			in:   "<message xmlns:c='urn:xmpp:carbons:2' to='alice@example.com/phone'><c:private/></message>",
			has:  true,
			want: "<message xmlns:c='urn:xmpp:carbons:2' to='alice@example.com/phone'><c:private/></message>",
		},
		{
			name: "a private nested inside forwarded does not count",
			in:   "<message to='alice@example.com/phone'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>" + private + "</message></forwarded></message>",
			want: "<message to='alice@example.com/phone'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>" + private + "</message></forwarded>" + private + "</message>",
		},
		{
			name: "a self-closing message is opened for it",
			in:   "<message to='alice@example.com/phone' id='p2'/>",
			want: "<message to='alice@example.com/phone' id='p2'>" + private + "</message>",
		},
		{
			name: "presence is not a message and is unchanged",
			in:   "<presence to='alice@example.com/phone'/>",
			want: "<presence to='alice@example.com/phone'/>",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			has, err := HasPrivate([]byte(tc.in))
			if err != nil || has != tc.has {
				t.Errorf("HasPrivate = %v, %v; want %v", has, err, tc.has)
			}
			got, err := WithPrivate([]byte(tc.in))
			if err != nil {
				t.Fatalf("WithPrivate: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("WithPrivate\n in: %s\ngot: %s\nwant: %s", tc.in, got, tc.want)
			}
			if !wellFormed(got) {
				t.Errorf("output is not well-formed: %s", got)
			}
		})
	}
}

func TestPrivateBadInput(t *testing.T) {
	in := []byte("<message><body>unclosed</message>")
	if _, err := HasPrivate(in); !errors.Is(err, ErrNotWellFormed) {
		t.Errorf("HasPrivate error = %v, want ErrNotWellFormed", err)
	}
	if _, err := WithPrivate(in); !errors.Is(err, ErrNotWellFormed) {
		t.Errorf("WithPrivate error = %v, want ErrNotWellFormed", err)
	}
}
