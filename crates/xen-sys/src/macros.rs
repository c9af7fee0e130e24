//! Crate-internal helper macros.

/// Defines a fieldless enum whose variants are the values of a C constant set,
/// with `TryFrom<raw>` (rejecting unknown values), `From<enum> for raw`, a
/// `const fn from_raw` and the list of all variants.
macro_rules! xen_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $repr:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr($repr)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The raw ABI value.
            #[must_use]
            pub const fn raw(self) -> $repr {
                self as $repr
            }

            /// Converts a raw ABI value, or `None` if it names no variant
            /// (a `const` form of the `TryFrom` conversion).
            #[must_use]
            pub const fn from_raw(raw: $repr) -> Option<Self> {
                $(
                    if raw == $value {
                        return Some(Self::$variant);
                    }
                )+
                None
            }
        }

        impl TryFrom<$repr> for $name {
            type Error = $crate::UnknownValue<$repr>;

            fn try_from(raw: $repr) -> Result<Self, $crate::UnknownValue<$repr>> {
                Self::from_raw(raw).ok_or($crate::UnknownValue::new(stringify!($name), raw))
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v.raw()
            }
        }
    };
}

/// Compile-time check of a type's size, alignment and field offsets.
macro_rules! assert_layout {
    ($t:ty, size $size:expr, align $align:expr $(, $field:ident @ $off:expr)* $(,)?) => {
        const _: () = {
            assert!(::core::mem::size_of::<$t>() == $size);
            assert!(::core::mem::align_of::<$t>() == $align);
            $( assert!(::core::mem::offset_of!($t, $field) == $off); )*
        };
    };
}

/// The zerocopy derives plus the usual value traits for an ABI struct whose
/// fields all implement `Default`.
macro_rules! abi_struct {
    ($(#[$meta:meta])* pub struct $($rest:tt)*) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq,
            zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout,
        )]
        pub struct $($rest)*
    };
}

/// Like `abi_struct!` but without `Default` (for structs with arrays longer
/// than 32 elements); a zeroing `Default` is implemented instead.
macro_rules! abi_struct_big {
    ($(#[$meta:meta])* pub struct $name:ident $($rest:tt)*) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq,
            zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout,
        )]
        pub struct $name $($rest)*

        impl Default for $name {
            fn default() -> Self {
                <Self as zerocopy::FromZeros>::new_zeroed()
            }
        }
    };
}
