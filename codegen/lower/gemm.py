"""Matrix products in symgrad's own native code: a register-blocked, vectorised GEMM.

``symgrad.gemm.f32`` and ``symgrad.gemm.f64`` compute, for the columns ``first <= j < last``::

    C[i, j] = sum_k A[i, k] B[k, j]        (0 <= i < M, 0 <= k < K)

with A and B read through strides (element ``(i, k)`` of A at ``A[i*a_row + k*a_col]``, and
likewise for B, which must have a unit stride along one of its axes) and C row-major with
``ldc`` elements per row.  Micro-kernels keep a tile of ``ROWS`` rows by two vectors of C in
registers: per ``k``, two vector loads of a row of B, one broadcast of A per row and
``2 * ROWS`` fused multiply-adds.  Where the rows of B are not contiguous (B is the transpose
of a stored matrix, as the weights in ``X @ W.T``), B is packed, ``PANEL_DEPTH`` values of
``k`` by two vectors of columns at a time (blocks transposed in registers), into a panel on the
stack that stays in the L1 cache while the row tiles pass over it.  Partial tiles use masked
loads and stores; a partial row tile computes its last row again in place of the missing ones.

Every element of C is one chain of fused multiply-adds over ``k = 0, 1, ..., K-1`` whatever
tile, edge or range of columns computes it (a panel's sums continue from C's values): results
do not depend on how the columns are shared among threads.  (They differ from a BLAS in the
last bits, as BLAS libraries do among themselves.)  ``SYMGRAD_GEMM=blas`` makes kernels call
numpy's OpenBLAS instead (:mod:`symgrad.codegen.runtime.libraries`), for comparisons.

This module emits the code (:func:`build`); each dtype's function lives in a module of its
own, compiled once per process (and kept in the disk cache) and registered with the JIT under
its name by :mod:`symgrad.codegen.runtime.libraries`, so that kernels call it as they would
call a library.
"""

from llvmlite import ir as llvm_ir

from symgrad.codegen.lower.types import INDEX, INTRINSIC_SUFFIX, POINTER, llvm_type

NAMES = {"float32": "symgrad.gemm.f32", "float64": "symgrad.gemm.f64"}
# Values of k per packed panel of B: a panel (PANEL_DEPTH x two vectors) of 32 KiB stays in
# the L1 cache while every row tile of A passes over it.
PANEL_DEPTH = 256
_SIGNATURE = [INDEX, INDEX, INDEX, POINTER, INDEX, INDEX, POINTER, INDEX, INDEX, POINTER, INDEX,
              INDEX, INDEX]


class _Builder:
    """Emits one dtype's GEMM into a module."""

    def __init__(self, module, dtype, vector_bytes, rows):
        self.module = module
        self.dtype = dtype
        self.element = llvm_type(dtype)
        self.size = 4 if dtype == "float32" else 8
        self.lanes = vector_bytes // self.size
        self.rows = rows
        self.vector = llvm_ir.VectorType(self.element, self.lanes)
        self.mask_type = llvm_ir.VectorType(llvm_ir.IntType(1), self.lanes)
        suffix = f"v{self.lanes}{INTRINSIC_SUFFIX[dtype]}"
        self.fma = llvm_ir.Function(module, llvm_ir.FunctionType(
            self.vector, [self.vector] * 3), f"llvm.fma.{suffix}")
        int32 = llvm_ir.IntType(32)
        self.masked_load = llvm_ir.Function(module, llvm_ir.FunctionType(
            self.vector, [POINTER, int32, self.mask_type, self.vector]),
            f"llvm.masked.load.{suffix}.p0")
        self.masked_store = llvm_ir.Function(module, llvm_ir.FunctionType(
            llvm_ir.VoidType(), [self.vector, POINTER, int32, self.mask_type]),
            f"llvm.masked.store.{suffix}.p0")
        self.zero = llvm_ir.Constant(self.vector, [0.0] * self.lanes)
        self.alignment = int32(self.size)

    def loop(self, builder, function, start, stop, step, body, name):
        """``for index in range(start, stop, step): body(builder, index)``; leaves the builder
        after the loop."""
        before = builder.block
        header = function.append_basic_block(f"{name}.header")
        inside = function.append_basic_block(f"{name}.body")
        after = function.append_basic_block(f"{name}.after")
        builder.branch(header)
        builder.position_at_end(header)
        index = builder.phi(INDEX, name=name)
        index.add_incoming(start, before)
        builder.cbranch(builder.icmp_signed("<", index, stop), inside, after)
        builder.position_at_end(inside)
        body(builder, index)
        following = builder.add(index, step)
        index.add_incoming(following, builder.block)
        builder.branch(header)
        builder.position_at_end(after)

    def splat(self, builder, value, vector_type=None):
        vector_type = vector_type or self.vector
        return builder.shuffle_vector(
            builder.insert_element(llvm_ir.Constant(vector_type, None), value, INDEX(0)),
            llvm_ir.Constant(vector_type, None),
            llvm_ir.Constant(llvm_ir.VectorType(llvm_ir.IntType(32), self.lanes),
                             [0] * self.lanes))

    def mask(self, builder, width):
        """Lanes ``0 .. width - 1`` set (width may be below 0 or above the lane count)."""
        indices = llvm_ir.VectorType(INDEX, self.lanes)
        return builder.icmp_signed("<", llvm_ir.Constant(indices, list(range(self.lanes))),
                                   self.splat(builder, width, indices))

    def no_lanes(self):
        return llvm_ir.Constant(self.mask_type, [0] * self.lanes)

    def micro_kernel(self):
        """``tile(rows, K, A, a_row, a_col, B, b_row, C, ldc, mask0, mask1, accumulate)``:
        ``rows`` (at most ``self.rows``) rows of C by two vectors (the lanes where the masks
        are set), B's rows contiguous; with ``accumulate``, the sums continue from C's values.
        A partial tile computes its last row again in place of the missing ones and stores
        only its own rows."""
        function = llvm_ir.Function(self.module, llvm_ir.FunctionType(llvm_ir.VoidType(), [
            INDEX, INDEX, POINTER, INDEX, INDEX, POINTER, INDEX, POINTER, INDEX, self.mask_type,
            self.mask_type, llvm_ir.IntType(1)]),
            f"symgrad.gemm.{INTRINSIC_SUFFIX[self.dtype]}.tile")
        function.linkage = "internal"
        function.attributes.add("noinline")         # one copy: code generation time
        rows, count, a, a_row, a_col, b, b_row, c, ldc, mask0, mask1, accumulate = function.args
        masks = (mask0, mask1)
        entry = function.append_basic_block("entry")
        header = function.append_basic_block("k.header")
        body = function.append_basic_block("k.body")
        done = function.append_basic_block("k.done")
        builder = llvm_ir.IRBuilder(entry)
        last_row = builder.sub(rows, INDEX(1))
        a_rows, c_rows, initial = [], [], []
        for r in range(self.rows):
            row = builder.select(builder.icmp_signed("<", INDEX(r), rows), INDEX(r), last_row)
            a_rows.append(builder.gep(a, [builder.mul(row, a_row)], source_etype=self.element))
            c_rows.append(builder.gep(c, [builder.mul(row, ldc)], source_etype=self.element))
            initial.append([builder.select(accumulate, builder.call(self.masked_load, [
                builder.gep(c_rows[-1], [INDEX(v * self.lanes)], source_etype=self.element),
                self.alignment, masks[v], self.zero]), self.zero) for v in range(2)])
        builder.branch(header)
        builder.position_at_end(header)
        k = builder.phi(INDEX, name="k")
        k.add_incoming(INDEX(0), entry)
        accumulators = [[builder.phi(self.vector, name=f"c{r}.{v}") for v in range(2)]
                        for r in range(self.rows)]
        for row, values in zip(accumulators, initial):
            for accumulator, value in zip(row, values):
                accumulator.add_incoming(value, entry)
        builder.cbranch(builder.icmp_signed("<", k, count), body, done)

        builder.position_at_end(body)
        b_line = builder.gep(b, [builder.mul(k, b_row)], source_etype=self.element)
        b_vectors = [builder.call(self.masked_load, [
            builder.gep(b_line, [INDEX(v * self.lanes)], source_etype=self.element),
            self.alignment, masks[v], self.zero]) for v in range(2)]
        offset = builder.mul(k, a_col)
        for a_line, row in zip(a_rows, accumulators):
            scalar = builder.load(builder.gep(a_line, [offset], source_etype=self.element),
                                  typ=self.element)
            splat = self.splat(builder, scalar)
            for v, accumulator in enumerate(row):
                accumulator.add_incoming(
                    builder.call(self.fma, [splat, b_vectors[v], accumulator]), body)
        k.add_incoming(builder.add(k, INDEX(1)), body)
        builder.branch(header)

        builder.position_at_end(done)
        for r, (line, row) in enumerate(zip(c_rows, accumulators)):
            present = builder.icmp_signed("<", INDEX(r), rows)
            for v, accumulator in enumerate(row):
                builder.call(self.masked_store, [
                    accumulator, builder.gep(line, [INDEX(v * self.lanes)],
                                             source_etype=self.element),
                    self.alignment, builder.select(present, masks[v], self.no_lanes())])
        builder.ret_void()
        return function

    def pack(self, builder, function, b, b_col, k_first, k_count, j, columns, panel):
        """panel[k, c] = B[k_first + k, j + c] for k < k_count, c < columns (at most two
        vectors), where B's columns are contiguous: blocks of lanes x lanes, transposed in
        registers.  The panel's rows are two vectors long."""
        stride = 2 * self.lanes

        def row_block(builder, k):
            valid_rows = builder.sub(k_count, k)
            row_mask = self.mask(builder, valid_rows)

            def half(builder, first_column):
                # Row r of the block: B[k_first + k .., j + first_column + r], contiguous.
                vectors = []
                for r in range(self.lanes):
                    column = builder.add(first_column, INDEX(r))
                    present = builder.icmp_signed("<", column, columns)
                    source = builder.gep(b, [builder.add(builder.mul(builder.add(j, column),
                                                                     b_col),
                                                         builder.add(k_first, k))],
                                         source_etype=self.element)
                    vectors.append(builder.call(self.masked_load, [
                        source, self.alignment,
                        builder.select(present, row_mask, self.no_lanes()), self.zero]))
                for r, vector in enumerate(self.transpose(builder, vectors)):
                    target = builder.gep(panel, [builder.add(
                        builder.mul(builder.add(k, INDEX(r)), INDEX(stride)), first_column)],
                        source_etype=self.element)
                    present = builder.icmp_signed("<", INDEX(r), valid_rows)
                    full = llvm_ir.Constant(self.mask_type, [1] * self.lanes)
                    builder.call(self.masked_store, [
                        vector, target, self.alignment,
                        builder.select(present, full, self.no_lanes())])
            self.loop(builder, function, INDEX(0), INDEX(stride), INDEX(self.lanes), half,
                      "pack.half")
        self.loop(builder, function, INDEX(0), k_count, INDEX(self.lanes), row_block,
                  "pack.k")

    def transpose(self, builder, rows):
        """The transpose of a lanes x lanes block held as ``lanes`` vectors: at each stage,
        rows r and r + half swap the off-diagonal blocks of width ``half``."""
        rows = list(rows)
        size = self.lanes
        index_type = llvm_ir.VectorType(llvm_ir.IntType(32), size)
        half = size // 2
        while half:
            low = [j if not j & half else size + j - half for j in range(size)]
            high = [j + half if not j & half else size + j for j in range(size)]
            for r in range(size):
                if r & half:
                    continue
                x, y = rows[r], rows[r + half]
                rows[r] = builder.shuffle_vector(x, y, llvm_ir.Constant(index_type, low))
                rows[r + half] = builder.shuffle_vector(x, y, llvm_ir.Constant(index_type, high))
            half //= 2
        return rows

    def gemm(self):
        tile = self.micro_kernel()
        function = llvm_ir.Function(self.module, llvm_ir.FunctionType(
            llvm_ir.VoidType(), _SIGNATURE), NAMES[self.dtype])
        (m, n, count, a, a_row, a_col, b, b_row, b_col, c, ldc, first,
         last) = function.args
        for argument, name in zip(function.args, ["M", "N", "K", "A", "a_row", "a_col", "B",
                                                  "b_row", "b_col", "C", "ldc", "first",
                                                  "last"]):
            argument.name = name
        builder = llvm_ir.IRBuilder(function.append_basic_block("entry"))
        panel_stride = 2 * self.lanes
        panel = builder.alloca(self.element, size=INDEX(PANEL_DEPTH * panel_stride))
        work = function.append_basic_block("work")
        finish = function.append_basic_block("finish")
        builder.cbranch(builder.and_(builder.icmp_signed(">", last, first),
                                     builder.icmp_signed(">", m, INDEX(0))), work, finish)
        builder.position_at_end(finish)
        builder.ret_void()

        builder.position_at_end(work)
        direct = function.append_basic_block("direct")
        packed = function.append_basic_block("packed")
        builder.cbranch(builder.or_(builder.icmp_signed("==", b_col, INDEX(1)),
                                    builder.icmp_signed("<=", count, INDEX(0))), direct, packed)

        def columns_of(builder, j):
            remaining = builder.sub(last, j)
            return remaining, [self.mask(builder, builder.sub(remaining, INDEX(v * self.lanes)))
                               for v in range(2)]

        def tiles(builder, a_block, k_count, b_rows, b_stride, j, masks, accumulate):
            def tile_rows(builder, i):
                rows = builder.sub(m, i)
                rows = builder.select(builder.icmp_signed("<", rows, INDEX(self.rows)), rows,
                                      INDEX(self.rows))
                a_tile = builder.gep(a_block, [builder.mul(i, a_row)],
                                     source_etype=self.element)
                c_tile = builder.gep(c, [builder.add(builder.mul(i, ldc), j)],
                                     source_etype=self.element)
                builder.call(tile, [rows, k_count, a_tile, a_row, a_col, b_rows, b_stride,
                                    c_tile, ldc, *masks, accumulate])
            self.loop(builder, function, INDEX(0), m, INDEX(self.rows), tile_rows, "i")

        # B's rows contiguous: the tiles read it in place.
        builder.position_at_end(direct)

        def direct_columns(builder, j):
            _, masks = columns_of(builder, j)
            tiles(builder, a, count, builder.gep(b, [j], source_etype=self.element), b_row, j,
                  masks, llvm_ir.Constant(llvm_ir.IntType(1), 0))
        self.loop(builder, function, first, last, INDEX(panel_stride), direct_columns, "j")
        builder.branch(finish)

        # B's columns contiguous (B is the transpose of a stored matrix): per two vectors of
        # columns and PANEL_DEPTH values of k, a panel on the stack (it stays in the L1 cache),
        # the sums continuing from C after the first.
        builder.position_at_end(packed)

        def packed_columns(builder, j):
            remaining, masks = columns_of(builder, j)

            def depth_block(builder, k):
                depth = builder.sub(count, k)
                depth = builder.select(builder.icmp_signed("<", depth, INDEX(PANEL_DEPTH)),
                                       depth, INDEX(PANEL_DEPTH))
                self.pack(builder, function, b, b_col, k, depth, j, remaining, panel)
                a_block = builder.gep(a, [builder.mul(k, a_col)], source_etype=self.element)
                tiles(builder, a_block, depth, panel, INDEX(panel_stride), j, masks,
                      builder.icmp_signed(">", k, INDEX(0)))
            self.loop(builder, function, INDEX(0), count, INDEX(PANEL_DEPTH), depth_block,
                      "k.block")
        self.loop(builder, function, first, last, INDEX(panel_stride), packed_columns, "j")
        builder.branch(finish)

        return function


def declare(module, dtype):
    """``NAMES[dtype]`` declared in ``module``."""
    name = NAMES[dtype]
    function = module.globals.get(name)
    if function is None:
        function = llvm_ir.Function(module, llvm_ir.FunctionType(llvm_ir.VoidType(),
                                                                  _SIGNATURE), name)
    return function


def build(dtype, vector_bytes, rows):
    """The module of ``NAMES[dtype]``, for vectors of ``vector_bytes`` and tiles of ``rows``
    rows (see :func:`symgrad.codegen.runtime.libraries.gemm_shape`)."""
    module = llvm_ir.Module(name=NAMES[dtype])
    _Builder(module, dtype, vector_bytes, rows).gemm()
    return module


def column_tile(dtype, vector_bytes):
    """Columns per tile of the GEMM: threads share a product's columns in multiples of
    this."""
    return 2 * vector_bytes // (4 if dtype == "float32" else 8)
