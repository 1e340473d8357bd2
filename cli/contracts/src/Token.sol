// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Benchmark token
/// @notice A plain OpenZeppelin ERC-20. The workload generator writes balances and allowances
///         straight into storage (see `storageLayout` in build/Token.json), so the runtime code
///         is all the benchmarks need; the constructor exists for completeness.
contract Token is ERC20 {
    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) {}
}
