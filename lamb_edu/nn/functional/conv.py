"""Convolution and pooling, each one graph node with its gradient written by hand.

``conv2d`` by im2col: every window the kernel visits is copied into one column of a matrix, so
the whole convolution is one matrix product; its backward adds each column back where it came
from (col2im). ``max_pool2d`` keeps, for each window, where its maximum was, and its backward
sends the gradient there.

Images are NCHW: (batch, channels, height, width), as in PyTorch, whatever their memory layout.
The images that ``conv2d`` and ``max_pool2d`` make, and the gradients they send back, are laid
out (C, H, W, N) in memory, the batch index fastest (``_empty_images``): then the im2col product
is the output as it stands, and every copy and pass over windows reads long contiguous runs.
"""

from __future__ import annotations

from typing import Any

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp

__all__ = ["conv2d", "max_pool2d", "check_pool_window"]

# ----------------------------------------------------------------------- convolution and pooling
_spare_buffers: dict[tuple[tuple[int, ...], str], Any] = {}  # one free array per shape and dtype


def _borrow(shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised array, reused from an earlier step when one of this shape was given back.

    The im2col matrices are tens of megabytes; a fresh one each step costs the page faults of
    new memory, so each convolution borrows them here and gives them back when done with them.
    """
    spare = _spare_buffers.pop((shape, str(dtype)), None)
    return spare if spare is not None else xp.empty(shape, dtype=dtype)


def _give_back(array: Any) -> None:
    """Return a borrowed array (nothing may use it afterwards); at most a few shapes are kept."""
    if len(_spare_buffers) >= 8:
        _spare_buffers.pop(next(iter(_spare_buffers)))
    _spare_buffers[(tuple(array.shape), str(array.dtype))] = array


def _windows(x: Any, kernel: tuple[int, int], stride: int, out_size: tuple[int, int]) -> Any:
    """The view ``windows[n, c, i, j, p, q] = x[n, c, p·stride + i, q·stride + j]`` of an NCHW array.

    No copy: the same memory read with other strides (whatever order the axes have in memory).
    ``windows[:, :, i, j]`` is the part of the image that kernel offset (i, j) meets, for every
    output position (p, q) at once.
    """
    n, c, h, w = x.strides
    shape = (x.shape[0], x.shape[1], *kernel, *out_size)
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=(n, c, h, w, h * stride, w * stride))


def _empty_images(shape: tuple[int, ...], dtype: Any, zeros: bool = False) -> Any:
    """An (N, C, H, W) array whose memory is laid out (C, H, W, N): the batch index varies fastest.

    The layout the convolutions and poolings here pass between them: every window copy, every
    col2im addition and every pooling pass then runs over long contiguous stretches (a whole row of
    the batch) instead of rows of a few pixels.
    """
    batch, channels, height, width = shape
    make = xp.zeros if zeros else xp.empty
    return make((channels, height, width, batch), dtype=dtype).transpose(3, 0, 1, 2)


def _batch_last(images: Any) -> Any:
    """The (C, H, W, N) contiguous array of NCHW ``images``: no copy when they have that layout already."""
    return xp.ascontiguousarray(images.transpose(1, 2, 3, 0))


def _conv_output_size(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int) -> tuple[int, int]:
    """(OH, OW) of ``conv2d``, after checking every shape; a ValueError names both shapes."""
    if not isinstance(stride, int) or stride < 1 or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"conv2d needs an integer stride >= 1 and padding >= 0, "
                         f"got stride={stride!r}, padding={padding!r}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d expects a weight of shape (out_channels, in_channels, kh, kw), got {weight.shape}")
    if x.ndim != 4:
        raise ValueError(f"conv2d expects an input of shape (batch, channels, height, width), got {x.shape} "
                         f"(weight {weight.shape})")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: the input of shape {x.shape} has {x.shape[1]} channels, "
                         f"the weight of shape {weight.shape} expects {weight.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias of shape {bias.shape} does not match the weight of shape {weight.shape}")
    height, width = x.shape[2] + 2 * padding, x.shape[3] + 2 * padding
    if weight.shape[2] > height or weight.shape[3] > width:
        raise ValueError(f"conv2d: the kernel {weight.shape[2]}x{weight.shape[3]} (weight {weight.shape}) is larger "
                         f"than the padded input {height}x{width} (input {x.shape}, padding {padding})")
    return (height - weight.shape[2]) // stride + 1, (width - weight.shape[3]) // stride + 1


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """2-D convolution of NCHW ``x`` with ``weight`` (out_channels, in_channels, kh, kw), as ``torch.conv2d``.

    out[n, o, p, q] = bias[o] + Σ_{c,i,j} weight[o, c, i, j] · x_padded[n, c, p·stride + i, q·stride + j].
    im2col: the windows are copied once into ``columns``, a (C·kh·kw, OH·OW·N) matrix whose column
    is one window, so the whole sum is one matrix product ``weight.reshape(O, C·kh·kw) @ columns``.
    Channel and kernel offset index the rows, position and batch the columns (batch fastest, see
    ``_empty_images``): both operands are contiguous and the product (O, OH·OW·N) already is the
    output, in the (C, H, W, N) memory layout, with no transposed copy. Backward:
    grad_weight = grad @ columns.T, grad_bias sums grad, and grad_columns = weight.T @ grad is added
    back into the image through the same windows (``_col2im``), only when x needs a gradient.
    """
    x = x if isinstance(x, Tensor) else weight._lift(x)
    out_h, out_w = _conv_output_size(x, weight, bias, stride, padding)
    batch, channels, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    dtype = xp.result_type(x.data, weight.data)
    image = _batch_last(x.data)  # one copy of a differently laid out input beats strided gathers
    if padding:
        image = xp.pad(image, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    windows = _windows(image.transpose(3, 0, 1, 2), (kernel_h, kernel_w), stride, (out_h, out_w))
    columns = _borrow((channels * kernel_h * kernel_w, out_h * out_w * batch), dtype)
    # im2col: the one copy of the input, row (c, i, j) and column (p, q, n), in runs of OW·N values
    columns.reshape(channels, kernel_h, kernel_w, out_h, out_w, batch)[...] = windows.transpose(1, 2, 3, 4, 5, 0)
    weight_matrix = weight.data.reshape(out_channels, -1)
    product = weight_matrix @ columns
    if bias is not None:
        product += bias.data[:, None]
    data = product.reshape(out_channels, out_h, out_w, batch).transpose(3, 0, 1, 2)  # a view, no copy
    parents = (x, weight) if bias is None else (x, weight, bias)
    out = x._result(data, parents, "conv2d")
    if not out.requires_grad:
        _give_back(columns)
        return out

    def _backward() -> None:
        # the product's layout (O, OH·OW·N); no copy when the gradient came from this module
        grad = _batch_last(out.grad).reshape(out_channels, -1)
        if bias is not None and bias.requires_grad:
            bias._accumulate(grad.sum(axis=1).astype(bias.dtype, copy=False))
        if weight.requires_grad:
            weight._accumulate((grad @ columns.T).reshape(weight.shape).astype(weight.dtype, copy=False))
        if x.requires_grad:  # never for the input batch: the first layer skips col2im altogether
            grad_columns = xp.matmul(weight_matrix.T, grad, out=columns)  # columns are no longer needed
            grad_image = _col2im(grad_columns, (batch, channels, *image.shape[1:3]), (kernel_h, kernel_w), stride,
                                 (out_h, out_w))
            grad_x = grad_image[:, :, padding:padding + height, padding:padding + width]
            x._accumulate(grad_x.astype(x.dtype, copy=False))
        _give_back(columns)

    out._backward = _backward
    return out


def _col2im(grad_columns: Any, image_shape: tuple[int, ...], kernel: tuple[int, int], stride: int,
            out_size: tuple[int, int]) -> Any:
    """Add each column's gradient back to the pixels its window was copied from (im2col's adjoint).

    The result is NCHW in the (C, H, W, N) layout of ``_empty_images``, like the columns' rows and
    columns, so each addition runs over whole rows of the batch. Windows overlap, so the additions
    go one kernel offset (i, j) at a time: a loop over kh·kw, never over pixels.
    """
    batch, channels, _, _ = image_shape
    grad_columns = grad_columns.reshape(channels, *kernel, *out_size, batch).transpose(5, 0, 1, 2, 3, 4)
    grad_image = _empty_images(image_shape, grad_columns.dtype, zeros=True)
    grad_windows = _windows(grad_image, kernel, stride, out_size)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            grad_windows[:, :, i, j] += grad_columns[:, :, i, j]
    return grad_image


def check_pool_window(kernel_size: Any, stride: Any) -> None:
    """ValueError unless kernel_size is an int in [1, 15] (k² offsets fit the uint8 ``arg``) and stride an int >= 1."""
    if not isinstance(kernel_size, int) or not 1 <= kernel_size <= 15 or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"max_pool2d needs an integer kernel_size in [1, 15] and stride >= 1, "
                         f"got {kernel_size!r}, {stride!r}")


def max_pool2d(x: Tensor, kernel_size: int, stride: int | None = None) -> Tensor:
    """The maximum of each ``kernel_size``² window of NCHW ``x``; ``stride`` defaults to ``kernel_size``.

    Forward goes over the k² offsets of a window (not over pixels), keeping the running maximum and
    ``arg``, the offset it came from (the first one on ties, as offsets only replace on ">"). The
    maximum is the only input that moved the output, so backward sends each window's gradient to
    that one position, through the same windows view, offset by offset.
    """
    stride = kernel_size if stride is None else stride
    check_pool_window(kernel_size, stride)
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects an input of shape (batch, channels, height, width), got {x.shape}")
    if kernel_size > min(x.shape[2], x.shape[3]):
        raise ValueError(f"max_pool2d: the window {kernel_size}x{kernel_size} is larger than the input {x.shape}")
    out_size = ((x.shape[2] - kernel_size) // stride + 1, (x.shape[3] - kernel_size) // stride + 1)
    offsets = [(i, j) for i in range(kernel_size) for j in range(kernel_size)]
    # every pass below then reads and writes whole rows of the batch; mixed layouts are 20x slower
    windows = _windows(_batch_last(x.data).transpose(3, 0, 1, 2), (kernel_size, kernel_size), stride, out_size)
    out_shape = (*x.shape[:2], *out_size)
    data = _empty_images(out_shape, x.dtype)
    data[...] = windows[:, :, 0, 0]
    arg = _empty_images(out_shape, xp.uint8, zeros=True)
    larger = _empty_images(out_shape, bool)  # one mask, refilled for each offset
    for index, (i, j) in enumerate(offsets[1:], start=1):
        xp.greater(windows[:, :, i, j], data, out=larger)
        xp.maximum(data, windows[:, :, i, j], out=data)
        xp.maximum(arg, larger * xp.uint8(index), out=arg)  # offsets come in increasing order
    out = x._result(data, (x,), "max_pool2d")
    # Windows that tile the input exactly (stride = kernel, sizes divisible) write each pixel once.
    tiles = stride == kernel_size and x.shape[2] % stride == 0 and x.shape[3] % stride == 0

    def _backward() -> None:
        grad = _batch_last(out.grad).transpose(3, 0, 1, 2)  # arg's layout, whatever layout came back
        grad_x = _empty_images(x.shape, x.dtype, zeros=not tiles)
        grad_windows = _windows(grad_x, (kernel_size, kernel_size), stride, out_size)
        for index, (i, j) in enumerate(offsets):
            if tiles:
                xp.multiply(grad, arg == index, out=grad_windows[:, :, i, j])
            else:
                grad_windows[:, :, i, j] += grad * (arg == index)
        x._accumulate(grad_x)

    out._backward = _backward
    return out
