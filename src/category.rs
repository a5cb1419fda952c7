//! The national center's incident taxonomy and the severity scale.
//!
//! The ids are a stable interface: they appear in metrics labels, reports,
//! the API and rule files, so renaming one breaks dashboards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Phishing,
    Deface,
    Malware,
    Bruteforce,
    WebAttack,
    Recon,
    Dos,
    PrivilegeEscalation,
    PolicyViolation,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Phishing,
        Category::Deface,
        Category::Malware,
        Category::Bruteforce,
        Category::WebAttack,
        Category::Recon,
        Category::Dos,
        Category::PrivilegeEscalation,
        Category::PolicyViolation,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Category::Phishing => "phishing",
            Category::Deface => "deface",
            Category::Malware => "malware",
            Category::Bruteforce => "bruteforce",
            Category::WebAttack => "web-attack",
            Category::Recon => "recon",
            Category::Dos => "dos",
            Category::PrivilegeEscalation => "privilege-escalation",
            Category::PolicyViolation => "policy-violation",
        }
    }

    /// Label used in Vietnamese reports, as in the center's bulletins.
    pub fn label_vi(self) -> &'static str {
        match self {
            Category::Phishing => "Lừa đảo (Phishing)",
            Category::Deface => "Thay đổi giao diện (Deface)",
            Category::Malware => "Mã độc (Malware)",
            Category::Bruteforce => "Dò quét mật khẩu",
            Category::WebAttack => "Tấn công ứng dụng web",
            Category::Recon => "Thu thập thông tin / dò quét",
            Category::Dos => "Từ chối dịch vụ",
            Category::PrivilegeEscalation => "Leo thang đặc quyền",
            Category::PolicyViolation => "Vi phạm chính sách ATTT",
        }
    }

    /// Label used in English reports.
    pub fn label_en(self) -> &'static str {
        match self {
            Category::Phishing => "Phishing",
            Category::Deface => "Defacement",
            Category::Malware => "Malware",
            Category::Bruteforce => "Password brute force",
            Category::WebAttack => "Web application attack",
            Category::Recon => "Reconnaissance / scanning",
            Category::Dos => "Denial of service",
            Category::PrivilegeEscalation => "Privilege escalation",
            Category::PolicyViolation => "Security policy violation",
        }
    }

    /// ENISA Reference Security Incident Taxonomy class.
    pub fn rsit(self) -> &'static str {
        match self {
            Category::Phishing => "fraud:phishing",
            Category::Deface => {
                "information-content-security:unauthorised-information-modification"
            }
            Category::Malware => "malicious-code:infected-system",
            Category::Bruteforce => "intrusion-attempts:brute-force",
            Category::WebAttack => "intrusion-attempts:exploit",
            Category::Recon => "information-gathering:scanner",
            Category::Dos => "availability:dos",
            Category::PrivilegeEscalation => "intrusions:privileged-account-compromise",
            Category::PolicyViolation => "other:other",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.id() == s)
            .ok_or_else(|| {
                let ids: Vec<&str> = Category::ALL.iter().map(|c| c.id()).collect();
                format!("unknown category `{s}`; expected one of {}", ids.join(", "))
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Severity::Info => "Info",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }

    pub fn label_vi(self) -> &'static str {
        match self {
            Severity::Info => "Thông tin",
            Severity::Low => "Thấp",
            Severity::Medium => "Trung bình",
            Severity::High => "Cao",
            Severity::Critical => "Nghiêm trọng",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|c| c.id() == s)
            .ok_or_else(|| {
                format!("unknown severity `{s}`; expected one of info, low, medium, high, critical")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for c in Category::ALL {
            assert_eq!(c.id().parse::<Category>(), Ok(c));
        }
        for s in Severity::ALL {
            assert_eq!(s.id().parse::<Severity>(), Ok(s));
        }
        assert!("webattack"
            .parse::<Category>()
            .unwrap_err()
            .contains("web-attack"));
    }
}
