/* iostream_init.c -- libolm's one call into libstdc++, made a no-op.
 *
 * libolm is C++ that needs nothing of the C++ library but the iostream initializer that a
 * stray <iostream> include gives it (its only libstdc++ imports are std::ios_base::Init's
 * constructor and destructor, `nm -D --undefined-only libolm.so.3`). Running it constructs
 * the standard streams and every facet of the C locale when libolm loads: about 0.7 MiB of
 * libstdc++ and heap resident in every process that links libolm, for streams nothing here
 * writes to. The dynamic loader binds libolm's imports to a program's own definitions first,
 * so these empty ones run instead (tests/test_iostreams.c checks that std::cout stays
 * unconstructed). Should a libolm ever write to a stream, its import list would name it. */

void _ZNSt8ios_base4InitC1Ev(void *self);
void _ZNSt8ios_base4InitD1Ev(void *self);

void _ZNSt8ios_base4InitC1Ev(void *self)
{
    (void)self;
}

void _ZNSt8ios_base4InitD1Ev(void *self)
{
    (void)self;
}
