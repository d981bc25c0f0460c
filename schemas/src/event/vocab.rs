//! The closed vocabularies of the payload: event types, actions and the CBV 2.0 short names.
//!
//! Why enums and not strings: the payload is signed, indexed and compared; a misspelt business
//! step (`shiping`) would be accepted forever if it were free text. Each vocabulary here is the
//! complete CBV 2.0 list as the GS1 EPCIS 2.0 JSON Schema enumerates it, with its exact spelling
//! as the one text form. URIs from other vocabularies, which EPCIS would allow, are refused.

use core::fmt;

/// A text is not a member of a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a known {vocabulary}")]
pub struct VocabularyError {
    /// Which vocabulary.
    pub vocabulary: &'static str,
    /// The text found (at most 40 characters of it).
    pub value: alloc::string::String,
}

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )*
        }

        impl $name {
            /// Every member, in the order of the GS1 schema.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name as it appears in the payload.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The member spelt exactly `text`.
            pub fn parse(text: &str) -> Result<$name, VocabularyError> {
                match text {
                    $($text => Ok($name::$variant),)*
                    _ => Err(VocabularyError {
                        vocabulary: $what,
                        value: text.chars().take(40).collect(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        super::time::text_serde!($name, $what);
    };
}
vocabulary!(
    /// The five EPCIS 2.0 event types (`type`).
    EventType, "event type" {
        Object = "ObjectEvent",
        Aggregation = "AggregationEvent",
        Transformation = "TransformationEvent",
        Association = "AssociationEvent",
        Transaction = "TransactionEvent",
    }
);

vocabulary!(
    /// What an event does to its objects (`action`).
    Action, "action" {
        Add = "ADD",
        Observe = "OBSERVE",
        Delete = "DELETE",
    }
);

vocabulary!(
    /// CBV 2.0 business steps (`bizStep`).
    BizStep, "CBV 2.0 business step" {
        Accepting = "accepting",
        Arriving = "arriving",
        Assembling = "assembling",
        Collecting = "collecting",
        Commissioning = "commissioning",
        Consigning = "consigning",
        CreatingClassInstance = "creating_class_instance",
        CycleCounting = "cycle_counting",
        Decommissioning = "decommissioning",
        Departing = "departing",
        Destroying = "destroying",
        Disassembling = "disassembling",
        Dispensing = "dispensing",
        Encoding = "encoding",
        EnteringExiting = "entering_exiting",
        Holding = "holding",
        Inspecting = "inspecting",
        Installing = "installing",
        Killing = "killing",
        Loading = "loading",
        Other = "other",
        Packing = "packing",
        Picking = "picking",
        Receiving = "receiving",
        Removing = "removing",
        Repackaging = "repackaging",
        Repairing = "repairing",
        Replacing = "replacing",
        Reserving = "reserving",
        RetailSelling = "retail_selling",
        Shipping = "shipping",
        StagingOutbound = "staging_outbound",
        StockTaking = "stock_taking",
        Stocking = "stocking",
        Storing = "storing",
        Transporting = "transporting",
        Unloading = "unloading",
        Unpacking = "unpacking",
        VoidShipping = "void_shipping",
        SensorReporting = "sensor_reporting",
        Sampling = "sampling",
    }
);

vocabulary!(
    /// CBV 2.0 dispositions (`disposition`).
    Disposition, "CBV 2.0 disposition" {
        Active = "active",
        ContainerClosed = "container_closed",
        Damaged = "damaged",
        Destroyed = "destroyed",
        Dispensed = "dispensed",
        Disposed = "disposed",
        Encoded = "encoded",
        Expired = "expired",
        InProgress = "in_progress",
        InTransit = "in_transit",
        Inactive = "inactive",
        NoPedigreeMatch = "no_pedigree_match",
        NonSellableOther = "non_sellable_other",
        PartiallyDispensed = "partially_dispensed",
        Recalled = "recalled",
        Reserved = "reserved",
        RetailSold = "retail_sold",
        Returned = "returned",
        SellableAccessible = "sellable_accessible",
        SellableNotAccessible = "sellable_not_accessible",
        Stolen = "stolen",
        Unknown = "unknown",
        Available = "available",
        CompletenessVerified = "completeness_verified",
        CompletenessInferred = "completeness_inferred",
        Conformant = "conformant",
        ContainerOpen = "container_open",
        MismatchInstance = "mismatch_instance",
        MismatchClass = "mismatch_class",
        MismatchQuantity = "mismatch_quantity",
        NeedsReplacement = "needs_replacement",
        NonConformant = "non_conformant",
        Unavailable = "unavailable",
    }
);

vocabulary!(
    /// CBV 2.0 sensor measurement types (`sensorReport[].type`).
    MeasurementType, "CBV 2.0 measurement type" {
        AbsoluteHumidity = "AbsoluteHumidity",
        AbsorbedDose = "AbsorbedDose",
        AbsorbedDoseRate = "AbsorbedDoseRate",
        Acceleration = "Acceleration",
        Radioactivity = "Radioactivity",
        Altitude = "Altitude",
        AmountOfSubstance = "AmountOfSubstance",
        AmountOfSubstancePerUnitVolume = "AmountOfSubstancePerUnitVolume",
        Angle = "Angle",
        AngularAcceleration = "AngularAcceleration",
        AngularMomentum = "AngularMomentum",
        AngularVelocity = "AngularVelocity",
        Area = "Area",
        Capacitance = "Capacitance",
        Conductance = "Conductance",
        Conductivity = "Conductivity",
        Count = "Count",
        Density = "Density",
        Dimensionless = "Dimensionless",
        DoseEquivalent = "DoseEquivalent",
        DoseEquivalentRate = "DoseEquivalentRate",
        DynamicViscosity = "DynamicViscosity",
        ElectricCharge = "ElectricCharge",
        ElectricCurrent = "ElectricCurrent",
        ElectricCurrentDensity = "ElectricCurrentDensity",
        ElectricFieldStrength = "ElectricFieldStrength",
        Energy = "Energy",
        Exposure = "Exposure",
        Force = "Force",
        Frequency = "Frequency",
        Illuminance = "Illuminance",
        Inductance = "Inductance",
        Irradiance = "Irradiance",
        KinematicViscosity = "KinematicViscosity",
        Length = "Length",
        LinearMomentum = "LinearMomentum",
        Luminance = "Luminance",
        LuminousFlux = "LuminousFlux",
        LuminousIntensity = "LuminousIntensity",
        MagneticFlux = "MagneticFlux",
        MagneticFluxDensity = "MagneticFluxDensity",
        MagneticVectorPotential = "MagneticVectorPotential",
        Mass = "Mass",
        MassConcentration = "MassConcentration",
        MassFlowRate = "MassFlowRate",
        MassPerAreaTime = "MassPerAreaTime",
        MemoryCapacity = "MemoryCapacity",
        MolalityOfSolute = "MolalityOfSolute",
        MolarEnergy = "MolarEnergy",
        MolarMass = "MolarMass",
        MolarVolume = "MolarVolume",
        Power = "Power",
        Pressure = "Pressure",
        RadiantFlux = "RadiantFlux",
        RadiantIntensity = "RadiantIntensity",
        RelativeHumidity = "RelativeHumidity",
        Resistance = "Resistance",
        Resistivity = "Resistivity",
        SolidAngle = "SolidAngle",
        SpecificVolume = "SpecificVolume",
        Speed = "Speed",
        SurfaceDensity = "SurfaceDensity",
        SurfaceTension = "SurfaceTension",
        Temperature = "Temperature",
        Time = "Time",
        Torque = "Torque",
        Voltage = "Voltage",
        Volume = "Volume",
        VolumeFlowRate = "VolumeFlowRate",
        VolumeFraction = "VolumeFraction",
        VolumetricFlux = "VolumetricFlux",
        Wavenumber = "Wavenumber",
    }
);

vocabulary!(
    /// CBV 2.0 sensor alert types (`sensorReport[].exception`): an excursion or a sensor fault.
    SensorAlert, "CBV 2.0 sensor alert type" {
        AlarmCondition = "ALARM_CONDITION",
        ErrorCondition = "ERROR_CONDITION",
    }
);

vocabulary!(
    /// CBV 2.0 vector components (`sensorReport[].component`).
    Component, "CBV 2.0 component" {
        X = "x",
        Y = "y",
        Z = "z",
        AxialDistance = "axial_distance",
        Azimuth = "azimuth",
        Height = "height",
        SphericalRadius = "spherical_radius",
        PolarAngle = "polar_angle",
        ElevationAngle = "elevation_angle",
        Easting = "easting",
        Northing = "northing",
        Latitude = "latitude",
        Longitude = "longitude",
        Altitude = "altitude",
    }
);

vocabulary!(
    /// CBV 2.0 business transaction types (`bizTransactionList[].type`).
    BizTransactionType, "CBV 2.0 business transaction type" {
        Bol = "bol",
        Cert = "cert",
        Desadv = "desadv",
        Inv = "inv",
        Pedigree = "pedigree",
        Po = "po",
        Poc = "poc",
        Prodorder = "prodorder",
        Recadv = "recadv",
        Rma = "rma",
        Testprd = "testprd",
        Testres = "testres",
        Upevt = "upevt",
    }
);

vocabulary!(
    /// CBV 2.0 source and destination types (`sourceList[].type`, `destinationList[].type`).
    SourceDestType, "CBV 2.0 source/destination type" {
        OwningParty = "owning_party",
        PossessingParty = "possessing_party",
        Location = "location",
    }
);
