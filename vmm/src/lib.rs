//! vireo-vmm: Vireo's KVM backend.
