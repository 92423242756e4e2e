//! A macro for the protocol's numbered enums (opcodes, error codes, event
//! types ...): named variants plus `Unknown(i32)`, so a number this crate
//! does not know survives a round trip instead of failing or panicking.

macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr, $text:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A number this crate does not know, kept as it was received.
            Unknown(i32),
        }

        impl $name {
            /// Every named variant, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];

            /// The wire number.
            #[inline]
            pub const fn code(self) -> i32 {
                match self {
                    $( $name::$variant => $value, )*
                    $name::Unknown(v) => v,
                }
            }

            /// The name Apache ZooKeeper uses for it.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                    $name::Unknown(_) => "unknown",
                }
            }
        }

        impl From<i32> for $name {
            #[inline]
            fn from(v: i32) -> Self {
                match v {
                    $( x if x == $value => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for i32 {
            #[inline]
            fn from(v: $name) -> i32 {
                v.code()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self {
                    $name::Unknown(v) => write!(f, "unknown({v})"),
                    other => f.write_str(other.name()),
                }
            }
        }

        #[cfg(test)]
        impl $crate::sample::Sample for $name {
            fn sample(rng: &mut $crate::sample::Rng) -> Self {
                let i = rng.below(Self::ALL.len() as u32 + 1) as usize;
                match Self::ALL.get(i) {
                    Some(v) => *v,
                    None => $name::from(<i32 as $crate::sample::Sample>::sample(rng)),
                }
            }
        }

        impl $crate::jute::Record for $name {
            #[inline]
            fn encode<B: ::bytes::BufMut>(&self, buf: &mut B) {
                buf.put_i32(self.code());
            }
            #[inline]
            fn decode(buf: &mut ::bytes::Bytes) -> $crate::error::Result<Self> {
                Ok(<i32 as $crate::jute::Record>::decode(buf)?.into())
            }
        }
    };
}
pub(crate) use code_enum;
