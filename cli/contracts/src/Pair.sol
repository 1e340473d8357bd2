// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title Constant-product pool of two ERC-20 tokens
/// @notice Swaps keep `reserve0 * reserve1` from decreasing and charge a 0.3% fee on the input,
///         as Uniswap V2 does. Tokens and reserves live in storage (no immutables) so that the
///         same runtime code serves every pool the workload generator lays out.
contract Pair {
    IERC20 public token0;
    IERC20 public token1;
    uint256 public reserve0;
    uint256 public reserve1;

    event Swap(address indexed sender, address indexed to, bool zeroForOne, uint256 amountIn, uint256 amountOut);
    event Sync(uint256 reserve0, uint256 reserve1);

    error ZeroInput();
    error InsufficientLiquidity();
    error Slippage(uint256 amountOut, uint256 minAmountOut);
    error InvariantViolated();

    /// @notice Output amount for `amountIn` after the 0.3% fee.
    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut) public pure returns (uint256) {
        uint256 amountInWithFee = amountIn * 997;
        return (amountInWithFee * reserveOut) / (reserveIn * 1000 + amountInWithFee);
    }

    /// @notice Pulls `amountIn` of the input token from the caller (who approved this pool) and
    ///         pushes the output token to `to`.
    function swap(uint256 amountIn, uint256 minAmountOut, bool zeroForOne, address to)
        external
        returns (uint256 amountOut)
    {
        if (amountIn == 0) revert ZeroInput();
        (IERC20 tokenIn, IERC20 tokenOut, uint256 reserveIn, uint256 reserveOut) =
            zeroForOne ? (token0, token1, reserve0, reserve1) : (token1, token0, reserve1, reserve0);
        amountOut = getAmountOut(amountIn, reserveIn, reserveOut);
        if (amountOut == 0 || amountOut >= reserveOut) revert InsufficientLiquidity();
        if (amountOut < minAmountOut) revert Slippage(amountOut, minAmountOut);

        require(tokenIn.transferFrom(msg.sender, address(this), amountIn));
        require(tokenOut.transfer(to, amountOut));

        uint256 balance0 = token0.balanceOf(address(this));
        uint256 balance1 = token1.balanceOf(address(this));
        if (balance0 * balance1 < reserve0 * reserve1) revert InvariantViolated();
        reserve0 = balance0;
        reserve1 = balance1;

        emit Swap(msg.sender, to, zeroForOne, amountIn, amountOut);
        emit Sync(balance0, balance1);
    }
}
